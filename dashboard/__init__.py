"""The web dashboard: cluster, jobs, nodes, alerts and automation pages plus their JSON API.

Owns: FastAPI routers, view models, templates and plotly figures.
Must not touch: the store directly (``tsdb``; every number comes through ``tsdb.client``, the
PromQL interface), the exporter (``exporter``), or the scheduler except through ``scheduler``'s
action API behind operator authentication.
"""
