"""Types of bench._native (bench/_native.c): the C twins of the hot path's per-event steps."""

def track_run(rnd: object, n: int, limit: float, wire: tuple[tuple[bytes, tuple[bytes, ...]], ...],
              bounds: tuple[float, ...], session_b: bytes, device_b: bytes, event_id: int, last_id: int,
              out: list[bytes]) -> tuple[int, float | None]: ...
