"""The InfiniBand fabric seen from one management host: topology, names and switch-side counters.

Owns: the fabric model (switches, HCAs, ports, links), the parsers of infiniband-diags' text
(``ibnetdiscover``, ``iblinkinfo``, ``perfquery``), the YAML cabling plan and name overrides, the
tool runner (argv only, bounded in time and output) and the sweep that reads every port.
Must not touch: the store (``tsdb``), the scheduler, alerting or the simulator; it reads the fabric
through the tool runner it is handed and returns data, never metrics of a node of its own.
"""

# The scrape job a fabric collector's target belongs to (docs/operations.md, "The fabric collector"):
# the scrape configs ClusterWatch writes, the simulator's file_sd and serve's own series limit for it.
FABRIC_JOB = "clusterwatch-fabric"
