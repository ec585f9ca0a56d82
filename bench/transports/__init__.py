"""Transports: WebSocket (``ws``) and HTTP (``http``) modules with parallel names and shapes.

Each exposes a transport class with ``connect(device)``, ``send(device, payload, ids, intended_ns,
created_ns)``, ``send_untracked(device, payload)``, ``pending_writes``, ``abandon_unsent()`` and
``close()``, one write choke point that stamps actual send time and bytes, and reports every reply to an
``AckSink`` (``bench.metrics.AckTracker``). ``common`` holds what they share. Import the submodules
directly: this package imports nothing heavy.
"""
