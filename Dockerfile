# winnow serve for an exported ONNX model: CPU only, no torch (the `serve` extra).
#   docker build -t winnow-serve .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/model:/model:ro" winnow-serve \
#       --weights /model/model.onnx
# Inside the container the server binds 0.0.0.0 so that `-p` can reach it; publish the port
# on 127.0.0.1 (as above) unless the host should expose it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/cache
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt ".[serve]" \
    && useradd --create-home --uid 10001 winnow
USER winnow
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
ENTRYPOINT ["winnow", "serve", "--host", "0.0.0.0", "--port", "8000"]
