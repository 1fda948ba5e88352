"""One function per page computing its view model (a pydantic model): the HTML page embeds it
and the JSON route returns it, so both always show the same numbers."""
