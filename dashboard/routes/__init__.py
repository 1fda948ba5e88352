"""One APIRouter per area (overview, jobs, nodes, users, actions) plus the static files; each
page route and its JSON route call the same view function."""
