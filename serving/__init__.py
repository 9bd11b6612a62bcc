"""segkit serving: `segserve`, a Ray Serve application speaking the Open Inference Protocol.

`serving.app` is the deployment (one `Segmenter` per replica, Serve's dynamic batching);
`serving.limits` refuses oversized bodies and images before decoding; `serving.cli` is the
command. Ray is imported only by the app and the command (the `serve` extra installs it).
"""
