"""A FastAPI app that starts stepwell runs over HTTP and streams their steps (SSE)."""
