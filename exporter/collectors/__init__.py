"""Built-in collectors, one module each; importing this package registers them all."""
import importlib
import logging

log = logging.getLogger(__name__)

# Order is the order of --collectors' default list and of the exposition.
_MODULES = ("gpu", "gpm", "xid", "node", "infiniband", "storage", "jobs", "node_textfile", "fabric")

for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:
        # Tolerated only while a collector module is not yet written (it is then simply absent);
        # an import error *inside* an existing module is a real bug and propagates.
        if exc.name != f"{__name__}.{_name}":
            raise
