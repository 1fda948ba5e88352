"""The web dashboard: cluster, jobs, nodes, alerts and automation pages plus their JSON API.

Owns: FastAPI routers, view models, templates and plotly figures.
Must not touch: the store directly (every number comes through the PromQL interface) or the
scheduler except through ``scheduler``'s action API behind operator authentication.
"""
