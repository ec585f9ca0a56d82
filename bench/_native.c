/* bench._native: the hot path's per-event steps in C, each the exact twin of a pure-Python reference.

Why: a 10-event message costs the plan ~1.4 CPU-us per event in Python (three random draws, a bisect, a
bytes format, an append), most of what the hot path spends per event outside the socket. Here the same
draws and bytes cost a fraction of that. Nothing in this file decides anything the Python code does not:
each function names the Python it replaces, takes the same inputs, makes the same random draws in the
same order and returns the same bytes; tests/fleet compare both on many seeds and scenarios. When this
module is not built (no compiler), the Python runs instead, with the same results.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/random.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <math.h>
#include <time.h>

/* One draw of the device's stream: ``rnd()`` (a bound ``random.Random.random``). A builtin method that takes
   no arguments is called through its C function directly, as the interpreter's own call would end up. */
static inline int draw(PyObject *rnd, double *out) {
    PyObject *r;
    if (PyCFunction_Check(rnd) && PyCFunction_GET_FLAGS(rnd) == METH_NOARGS)
        r = PyCFunction_GET_FUNCTION(rnd)(PyCFunction_GET_SELF(rnd), NULL);
    else
        r = PyObject_CallNoArgs(rnd);
    if (r == NULL) return -1;
    double v = PyFloat_AsDouble(r);
    Py_DECREF(r);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* bisect.bisect_right(bounds, x) over a tuple of floats. */
static inline int bisect_floats(PyObject *bounds, double x, Py_ssize_t *out) {
    Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(bounds);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        double b = PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, mid));
        if (b == -1.0 && PyErr_Occurred()) return -1;
        if (x < b) hi = mid; else lo = mid + 1;
    }
    *out = lo;
    return 0;
}

static int bytes_of(PyObject *o, const char *what, const char **p, Py_ssize_t *n) {
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
}

PyDoc_STRVAR(track_run_doc,
"track_run(rnd, n, limit, wire, bounds, session_b, device_b, event_id, last_id, out) -> (event_id, u)\n\n"
"Up to n events of bench.fleet.device.Device._events, appended to the list out while each kind draw u\n"
"is below limit (an ``event``): the name by bisect_right(bounds, rnd()), the payload variant by\n"
"int(rnd() * len(tails)), the bytes head + session_b + b\"%d\" % event_id + device_b + tail.\n"
"Returns the next event id and None when n events were made, else the kind draw u (>= limit) that\n"
"stopped the run (its event is the caller's), or -1.0 when event_id would pass last_id (the caller\n"
"raises). The draws are those of the Python loop, in its order.");

/* Where track_core writes its events: each as a bytes object appended to a list (list set), or (list NULL)
   one after the other into a buffer, with the end of each kept: the hot path's message is then joined from
   the buffer in one allocation, with no bytes object per event (a WireSend keeps no parts). */
typedef struct {
    PyObject *list;
    PyObject *pending;  /* list mode: the event being written */
    char *buf;
    Py_ssize_t len, cap;
    Py_ssize_t *ends;
    Py_ssize_t count, max;
} Parts;

/* Room for an event of n bytes; NULL with an exception set when there is none. */
static char *parts_open(Parts *p, Py_ssize_t n) {
    if (p->list != NULL) {
        p->pending = PyBytes_FromStringAndSize(NULL, n);
        return p->pending == NULL ? NULL : PyBytes_AS_STRING(p->pending);
    }
    if (p->count >= p->max) {
        Py_ssize_t max = p->max ? 2 * p->max : 16;
        Py_ssize_t *ends = PyMem_Realloc(p->ends, (size_t)max * sizeof *ends);
        if (ends == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        p->ends = ends;
        p->max = max;
    }
    if (p->len + n > p->cap) {
        Py_ssize_t cap = p->cap ? 2 * p->cap : 4096;
        while (cap < p->len + n) cap *= 2;
        char *buf = PyMem_Realloc(p->buf, (size_t)cap);
        if (buf == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        p->buf = buf;
        p->cap = cap;
    }
    return p->buf + p->len;
}

/* The event opened last is written (n bytes). */
static int parts_close(Parts *p, Py_ssize_t n) {
    if (p->list != NULL) {
        int rc = PyList_Append(p->list, p->pending);
        Py_CLEAR(p->pending);
        return rc;
    }
    p->len += n;
    p->ends[p->count++] = p->len;
    return 0;
}

/* The buffer's events as a list of bytes objects (for the Python that takes over after a cut). */
static PyObject *parts_list(Parts *p) {
    PyObject *list = PyList_New(p->count);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0, start = 0; i < p->count; start = p->ends[i], i++) {
        PyObject *part = PyBytes_FromStringAndSize(p->buf + start, p->ends[i] - start);
        if (part == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, part);
    }
    return list;
}

/* The message {"data":[ events joined by , ]} of the buffer's events. */
static PyObject *parts_message(Parts *p) {
    PyObject *data = PyBytes_FromStringAndSize(NULL, 11 + p->len + (p->count ? p->count - 1 : 0));
    if (data == NULL) return NULL;
    char *w = PyBytes_AS_STRING(data);
    memcpy(w, "{\"data\":[", 9);
    w += 9;
    for (Py_ssize_t i = 0, start = 0; i < p->count; start = p->ends[i], i++) {
        if (i) *w++ = ',';
        memcpy(w, p->buf + start, (size_t)(p->ends[i] - start));
        w += p->ends[i] - start;
    }
    memcpy(w, "]}", 2);
    return data;
}

/* The buffer of the hot path's messages: one per process, refilled for each message (the GIL is held from
   the first event to the message, and nothing in between runs Python when the draws are random's own C). */
static Parts scratch;

/* The loop of track_run, shared with Ticks: up to n events written to out. *cut is 0 when n were made,
   else 1 with *cut_u the kind draw that stopped the run (-1.0: event_id would pass last_id). */
static int track_core(PyObject *rnd, Py_ssize_t n, double limit, PyObject *wire, PyObject *bounds,
                      PyObject *session_b, PyObject *device_b, long long *next_id, long long last_id,
                      Parts *out, int *cut, double *cut_u) {
    const char *sess, *dev;
    Py_ssize_t sess_n, dev_n;
    if (bytes_of(session_b, "session_b", &sess, &sess_n) < 0 || bytes_of(device_b, "device_b", &dev, &dev_n) < 0)
        return -1;
    long long event_id = *next_id;
    *cut = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        double u, name_u, tail_u;
        if (draw(rnd, &u) < 0) return -1;
        if (!(u < limit)) {
            *cut = 1;
            *cut_u = u;
            break;
        }
        if (draw(rnd, &name_u) < 0) return -1;
        Py_ssize_t at;
        if (bisect_floats(bounds, name_u, &at) < 0) return -1;
        if (at >= PyTuple_GET_SIZE(wire)) {
            PyErr_SetString(PyExc_IndexError, "track_run: the name draw is past the last template");
            return -1;
        }
        PyObject *tmpl = PyTuple_GET_ITEM(wire, at);
        if (!PyTuple_Check(tmpl) || PyTuple_GET_SIZE(tmpl) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(tmpl, 1))) {
            PyErr_SetString(PyExc_TypeError, "track_run: a template must be (head, tails)");
            return -1;
        }
        if (event_id > last_id) {
            *cut = 1;
            *cut_u = -1.0;
            break;
        }
        PyObject *tails = PyTuple_GET_ITEM(tmpl, 1);
        Py_ssize_t ntails = PyTuple_GET_SIZE(tails);
        if (draw(rnd, &tail_u) < 0) return -1;
        Py_ssize_t pick = (Py_ssize_t)(tail_u * (double)ntails);
        if (pick < 0 || pick >= ntails) {
            PyErr_SetString(PyExc_IndexError, "track_run: the payload draw is out of range");
            return -1;
        }
        const char *head, *tail;
        Py_ssize_t head_n, tail_n;
        if (bytes_of(PyTuple_GET_ITEM(tmpl, 0), "a template's head", &head, &head_n) < 0 ||
            bytes_of(PyTuple_GET_ITEM(tails, pick), "a template's tail", &tail, &tail_n) < 0)
            return -1;
        char digits[24];
        int dn = snprintf(digits, sizeof digits, "%lld", event_id);
        Py_ssize_t size = head_n + sess_n + dn + dev_n + tail_n;
        char *w = parts_open(out, size);
        if (w == NULL) return -1;
        memcpy(w, head, head_n); w += head_n;
        memcpy(w, sess, sess_n); w += sess_n;
        memcpy(w, digits, dn); w += dn;
        memcpy(w, dev, dev_n); w += dev_n;
        memcpy(w, tail, tail_n);
        if (parts_close(out, size) < 0) return -1;
        event_id++;
        *next_id = event_id;
    }
    return 0;
}

static PyObject *track_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "track_run takes 10 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *rnd = args[0], *wire = args[3], *bounds = args[4], *out = args[9];
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    double limit = PyFloat_AsDouble(args[2]);
    if (limit == -1.0 && PyErr_Occurred()) return NULL;
    long long event_id = PyLong_AsLongLong(args[7]);
    if (event_id == -1 && PyErr_Occurred()) return NULL;
    long long last_id = PyLong_AsLongLong(args[8]);
    if (last_id == -1 && PyErr_Occurred()) return NULL;
    if (!PyTuple_Check(wire) || !PyTuple_Check(bounds) || !PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "track_run: wire and bounds must be tuples, out a list");
        return NULL;
    }
    int cut;
    double cut_u = 0.0;
    Parts parts = {.list = out};
    if (track_core(rnd, n, limit, wire, bounds, args[5], args[6], &event_id, last_id, &parts, &cut, &cut_u) < 0)
        return NULL;
    if (cut) return Py_BuildValue("(Ld)", event_id, cut_u);
    return Py_BuildValue("(LO)", event_id, Py_None);
}

PyDoc_STRVAR(frame_masked_doc,
"frame_masked(payload[, mask]) -> bytes\n\n"
"One masked, final text frame (RFC 6455, 5.2) around payload with the 4-byte masking key mask (without\n"
"one: a fresh key from a pool filled by getrandom(2), as RFC 6455, 5.3 asks): the\n"
"bytes of bench.transports.ws.frame_text's Python twin (header + mask + apply_mask(payload, mask)),\n"
"built in one allocation.");

/* Masking keys drawn by frame_masked itself: a pool from the kernel's random source (getrandom(2), what
   os.urandom reads), refilled every 16,384 frames, as bench.transports.ws._Masks does for the Python twin. */
static unsigned char mask_pool[1 << 16];
static size_t mask_at = sizeof mask_pool;

static const char *next_mask(void) {
    if (mask_at >= sizeof mask_pool) {
        size_t got = 0;
        while (got < sizeof mask_pool) {
            ssize_t r = getrandom(mask_pool + got, sizeof mask_pool - got, 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                PyErr_SetFromErrno(PyExc_OSError);
                return NULL;
            }
            got += (size_t)r;
        }
        mask_at = 0;
    }
    const char *mask = (const char *)mask_pool + mask_at;
    mask_at += 4;
    return mask;
}

/* The length of a masked frame around n bytes of payload: header, key, payload. */
static inline Py_ssize_t frame_size(Py_ssize_t n) {
    return (n < 126 ? 2 : (n < 65536 ? 4 : 10)) + 4 + n;
}

/* A masked, final text frame around payload[0:n] with the 4-byte key mask, written at w (frame_size(n)
   bytes). */
static void write_frame(unsigned char *w, const char *payload, Py_ssize_t n, const char *mask) {
    Py_ssize_t head = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    w[0] = 0x81;
    if (head == 2) {
        w[1] = (unsigned char)(0x80 | n);
    } else if (head == 4) {
        w[1] = 0xfe;
        w[2] = (unsigned char)(n >> 8);
        w[3] = (unsigned char)n;
    } else {
        w[1] = 0xff;
        unsigned long long len = (unsigned long long)n;
        for (int i = 0; i < 8; i++) w[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    }
    w += head;
    memcpy(w, mask, 4);
    w += 4;
    /* payload XOR the key repeated: 8 bytes at a time, then the tail */
    unsigned char key8[8];
    for (int i = 0; i < 8; i++) key8[i] = (unsigned char)mask[i & 3];
    unsigned long long k;
    memcpy(&k, key8, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        unsigned long long v;
        memcpy(&v, payload + i, 8);
        v ^= k;
        memcpy(w + i, &v, 8);
    }
    for (; i < n; i++) w[i] = (unsigned char)(payload[i] ^ mask[i & 3]);
}

static PyObject *frame_masked(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1 && nargs != 2) {
        PyErr_Format(PyExc_TypeError, "frame_masked takes 1 or 2 arguments (%zd given)", nargs);
        return NULL;
    }
    const char *payload, *mask;
    Py_ssize_t n, mask_n = 4;
    if (bytes_of(args[0], "payload", &payload, &n) < 0) return NULL;
    if (nargs == 1) {
        if ((mask = next_mask()) == NULL) return NULL;
    } else if (bytes_of(args[1], "mask", &mask, &mask_n) < 0) {
        return NULL;
    }
    if (mask_n != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, not %zd", mask_n);
        return NULL;
    }
    Py_ssize_t total = frame_size(n);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, total);
    if (frame == NULL) return NULL;
    write_frame((unsigned char *)PyBytes_AS_STRING(frame), payload, n, mask);
    return frame;
}

PyDoc_STRVAR(send_frame_doc,
"send_frame(fd, payload) -> int | bytes\n\n"
"frame_masked(payload) written to the socket fd with one send(2) that does not wait: the frame's length\n"
"when the kernel took all of it, else the bytes it did not take (all of them when it took none), for the\n"
"caller to write later. Raises OSError for any other failure. The frame is built on the stack (on the heap\n"
"past 4 KiB), never as a bytes object. Its Python twin: socket.send(frame_text(payload)) in\n"
"bench.transports.polled.PolledSocket.write.");

static PyObject *send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "send_frame takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    int fd = _PyLong_AsInt(args[0]);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "send_frame: fd must be >= 0");
        return NULL;
    }
    const char *payload, *mask;
    Py_ssize_t n;
    if (bytes_of(args[1], "payload", &payload, &n) < 0) return NULL;
    if ((mask = next_mask()) == NULL) return NULL;
    Py_ssize_t total = frame_size(n);
    unsigned char stack[4096], *buf = stack;
    if (total > (Py_ssize_t)sizeof stack && (buf = PyMem_Malloc((size_t)total)) == NULL) return PyErr_NoMemory();
    write_frame(buf, payload, n, mask);
    ssize_t sent;
    do {
        sent = send(fd, buf, (size_t)total, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    PyObject *res;
    if (sent == total) {
        res = PyLong_FromSsize_t(total);
    } else if (sent >= 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
        if (sent < 0) sent = 0;
        res = PyBytes_FromStringAndSize((const char *)buf + sent, total - sent);
    } else {
        res = PyErr_SetFromErrno(PyExc_OSError);
    }
    if (buf != stack) PyMem_Free(buf);
    return res;
}

/* The ids of the compact reply {"reportedIds":[i,...]} (no whitespace, non-negative integers of at most 15
   digits, no leading zero): a new tuple, or NULL without an error for anything else (the Python parse
   decides). Every reply accepted here is one that bench.protocol.message.parse_ack_ids parses to the same
   tuple. */
static const char ACK_HEAD[] = "{\"reportedIds\":[";

static PyObject *compact_ack(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t hn = (Py_ssize_t)(sizeof ACK_HEAD - 1);
    if (n < hn + 2 || memcmp(p, ACK_HEAD, (size_t)hn) != 0 || p[n - 2] != ']' || p[n - 1] != '}') return NULL;
    long long ids[64];
    Py_ssize_t count = 0, i = hn, end = n - 2;
    if (i < end) {
        for (;;) {
            if (count == 64) return NULL;
            Py_ssize_t start = i;
            long long v = 0;
            while (i < end && p[i] >= '0' && p[i] <= '9') v = v * 10 + (p[i++] - '0');
            Py_ssize_t digits = i - start;
            if (digits == 0 || digits > 15 || (digits > 1 && p[start] == '0')) return NULL;
            ids[count++] = v;
            if (i == end) break;
            if (p[i] != ',') return NULL;
            i++;
        }
    }
    PyObject *out = PyTuple_New(count);
    if (out == NULL) return NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *v = PyLong_FromLongLong(ids[k]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k, v);
    }
    return out;
}

/* The header of the server frame at b[0:avail]: 1 when it is a final unmasked text/binary frame whose header is
   complete (*head its length, *length the payload's), 0 when more bytes are needed to tell, -1 for a frame of
   any other kind (the protocol's to read). */
static int frame_head(const unsigned char *b, Py_ssize_t avail, Py_ssize_t *head, unsigned long long *length) {
    if (avail < 2) return 0;
    unsigned long long n = b[1];
    if ((b[0] != 0x81 && b[0] != 0x82) || (n & 0x80)) return -1;
    Py_ssize_t h = 2;
    if (n == 126) {
        if (avail < 4) return 0;
        h = 4;
        n = ((unsigned long long)b[2] << 8) | b[3];
    } else if (n == 127) {
        if (avail < 10) return 0;
        h = 10;
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | b[2 + i];
    }
    *head = h;
    *length = n;
    return 1;
}

PyDoc_STRVAR(read_frames_doc,
"read_frames(buf, max_len) -> (items, pos, other)\n\n"
"The complete final unmasked text/binary frames at the start of buf (bench.transports.ws._WsConn's\n"
"fast reader, _read_fast_py, in C): items holds, per frame in order, the tuple of ids when its payload\n"
"is the compact reply {\"reportedIds\":[...]} of integers, else the payload's bytes (for the Python\n"
"parse); pos is where the frames read end; other is True when the frame at pos is of another kind or\n"
"longer than max_len (the protocol's to read), False when buf ends there or with a partial frame.");

static PyObject *read_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "read_frames takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    long long max_len = PyLong_AsLongLong(args[1]);
    if (max_len == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *b = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len, pos = 0;
    int other = 0;
    PyObject *items = PyList_New(0);
    if (items == NULL) goto fail;
    while (end - pos >= 2) {
        Py_ssize_t head;
        unsigned long long length;
        int kind = frame_head(b + pos, end - pos, &head, &length);
        if (kind == 0) break;
        if (kind < 0 || length > (unsigned long long)max_len) {
            other = 1;
            break;
        }
        if ((unsigned long long)(end - pos - head) < length) break;
        const unsigned char *payload = b + pos + head;
        Py_ssize_t n = (Py_ssize_t)length;
        PyObject *item = compact_ack(payload, n);
        if (item == NULL) {
            if (PyErr_Occurred()) goto fail;
            item = PyBytes_FromStringAndSize((const char *)payload, n);
            if (item == NULL) goto fail;
        }
        int rc = PyList_Append(items, item);
        Py_DECREF(item);
        if (rc < 0) goto fail;
        pos += head + n;
    }
    PyBuffer_Release(&view);
    PyObject *res = Py_BuildValue("(NnO)", items, pos, other ? Py_True : Py_False);
    return res;
fail:
    Py_XDECREF(items);
    PyBuffer_Release(&view);
    return NULL;
}

PyDoc_STRVAR(parse_compact_ack_doc,
"parse_compact_ack(data) -> tuple | None\n\n"
"The ids of the compact reply {\"reportedIds\":[...]} of integers, the same tuple as\n"
"bench.protocol.message.parse_ack_ids gives; None for any other reply (parse it in Python).");

static PyObject *parse_compact_ack(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *ids = compact_ack((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    if (ids == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return ids;
}

/* One recvmsg(2) of at most n bytes from fd into buf, with room for one SCM_TIMESTAMPNS control message (the one
   these sockets ask for): what recvmsg returns (errno set when < 0), and in *stamp the kernel's receive time in
   CLOCK_REALTIME ns, or -1 when the read carried none. */
static ssize_t recv_with_stamp(int fd, char *buf, size_t n, int flags, long long *stamp) {
    struct iovec iov = {buf, n};
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.b;
    mh.msg_controllen = sizeof control.b;
    *stamp = -1;
    ssize_t got = recvmsg(fd, &mh, flags);
    if (got < 0) return got;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        *stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    return got;
}

PyDoc_STRVAR(recv_stamped_doc,
"recv_stamped(fd, nbytes) -> (data, stamp_ns)\n\n"
"One recvmsg(2) of at most nbytes from the socket fd with room for one SCM_TIMESTAMPNS control\n"
"message: the bytes read (b'' at end of stream) and the kernel's receive time in CLOCK_REALTIME ns, or\n"
"-1 when the read carried none. Raises OSError (BlockingIOError when nothing waits), as\n"
"socket.recvmsg does; its twin is the recvmsg branch of bench.transports.polled.PolledSocket.on_readable.");

static PyObject *recv_stamped(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "recv_stamped takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    long fd_l = PyLong_AsLong(args[0]);
    if (fd_l == -1 && PyErr_Occurred()) return NULL;
    if (fd_l < 0 || fd_l > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "recv_stamped: fd out of range");
        return NULL;
    }
    int fd = (int)fd_l;
    Py_ssize_t nbytes = PyLong_AsSsize_t(args[1]);
    if (nbytes == -1 && PyErr_Occurred()) return NULL;
    if (nbytes <= 0) {
        PyErr_SetString(PyExc_ValueError, "recv_stamped: nbytes must be > 0");
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, nbytes);
    if (data == NULL) return NULL;
    long long stamp;
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = recv_with_stamp(fd, PyBytes_AS_STRING(data), (size_t)nbytes, 0, &stamp);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        Py_DECREF(data);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (got < nbytes && _PyBytes_Resize(&data, got) < 0) return NULL;
    PyObject *res = Py_BuildValue("(NL)", data, stamp);
    return res;
}

/* The frames of one read when every one is a complete compact reply with at least one id (at most room of
   them): their count and ids_out[k] new tuples; 0 for any other read (nothing kept); -1 with an exception
   set. */
static int fast_frames(const unsigned char *b, Py_ssize_t end, PyObject **ids_out, int room) {
    Py_ssize_t pos = 0;
    int count = 0;
    while (pos < end) {
        Py_ssize_t head;
        unsigned long long length;
        if (count == room || frame_head(b + pos, end - pos, &head, &length) <= 0 ||
            (unsigned long long)(end - pos - head) < length)
            goto other;  /* a partial frame, or another kind */
        PyObject *ids = compact_ack(b + pos + head, (Py_ssize_t)length);
        if (ids == NULL) {
            if (PyErr_Occurred()) goto fail;
            goto other;
        }
        if (PyTuple_GET_SIZE(ids) == 0) {  /* an empty reply: the heartbeat rule is the Python's */
            Py_DECREF(ids);
            goto other;
        }
        ids_out[count++] = ids;
        pos += head + (Py_ssize_t)length;
    }
    return count;
other:
    for (int k = 0; k < count; k++) Py_DECREF(ids_out[k]);
    return 0;
fail:
    for (int k = 0; k < count; k++) Py_DECREF(ids_out[k]);
    return -1;
}

/* fast[fd], borrowed; NULL when fd has no entry (or with an exception set). */
static PyObject *route_of(PyObject *fast, int fd) {
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) return NULL;
    PyObject *callback = PyDict_GetItemWithError(fast, key);
    Py_DECREF(key);
    return callback;
}

/* Calls callback(ids[k], rx) for each frame, in order; drops every ids[k]. -1 on an exception (the first one
   stops the calls). */
static int deliver(PyObject *callback, PyObject **ids, int count, long long rx) {
    int failed = 0;
    PyObject *rx_obj = PyLong_FromLongLong(rx);
    if (rx_obj == NULL) failed = 1;
    Py_INCREF(callback);  /* a callback may drop its own entry */
    for (int k = 0; k < count; k++) {
        if (!failed) {
            PyObject *call_args[2] = {ids[k], rx_obj};
            PyObject *res = PyObject_Vectorcall(callback, call_args, 2, NULL);
            if (res == NULL) failed = 1;
            else Py_DECREF(res);
        }
        Py_DECREF(ids[k]);
    }
    Py_DECREF(callback);
    Py_XDECREF(rx_obj);
    return failed ? -1 : 0;
}

#define POLL_MAX_EVENTS 1024
#define POLL_MAX_READ (1 << 16)
#define FAST_ROOM 64
static char poll_buf[POLL_MAX_READ];

PyDoc_STRVAR(poll_replies_doc,
"poll_replies(epfd, fast, clock, max_events, read_bytes, max_reads)\n"
"    -> (seen, slow, offset_ns, now_ns, routed_bytes, coalesced)\n\n"
"One pass of bench.transports.polled.Poller over the sockets ready in the epoll descriptor epfd (at most\n"
"max_events of them, without waiting). now_ns is clock() and offset_ns the realtime clock minus it, read once\n"
"when some socket is ready (else both 0). A socket whose fd is a key of the dict fast and that is ready to read\n"
"and nothing else is read here: recvmsg(2) of at most read_bytes (at most 64 KiB) with its SCM_TIMESTAMPNS\n"
"receive time, up to max_reads times while each read fills the buffer. A read that holds only complete\n"
"final unmasked text/binary frames, each the compact reply {\"reportedIds\":[...]} with at least one id, calls\n"
"fast[fd](ids, rx_ns) per frame, in order, where rx_ns is the receive time minus offset_ns, at most now_ns;\n"
"routed_bytes counts the bytes of such reads and coalesced their frames read with a later one.\n"
"Everything else is the Python's: slow lists (fd, events, data, stamp_ns) in epoll's order, one per other\n"
"socket and per socket whose read was of another kind or whose entry a callback removed; data is None (not\n"
"read here; stamp_ns -1), the bytes of the read made here (b'' at end of stream; stamp_ns -1 when it\n"
"carried no time) or the errno of a failed read. Its Python twin is Poller.poll's loop with\n"
"_WsConn.data_received.");

static PyObject *poll_replies(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "poll_replies takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    int epfd = _PyLong_AsInt(args[0]);
    PyObject *fast = args[1], *clock = args[2];
    Py_ssize_t max_events = PyLong_AsSsize_t(args[3]), read_bytes = PyLong_AsSsize_t(args[4]),
               max_reads = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (!PyDict_Check(fast) || !PyCallable_Check(clock)) {
        PyErr_SetString(PyExc_TypeError, "poll_replies: fast must be a dict, clock callable");
        return NULL;
    }
    if (max_events < 1 || max_events > POLL_MAX_EVENTS || read_bytes < 1 || read_bytes > POLL_MAX_READ ||
        max_reads < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "poll_replies: max_events must be 1..1024, read_bytes 1..65536, max_reads >= 1");
        return NULL;
    }
    struct epoll_event events[POLL_MAX_EVENTS];
    int ready = epoll_wait(epfd, events, (int)max_events, 0);
    if (ready < 0) {
        if (errno != EINTR) return PyErr_SetFromErrno(PyExc_OSError);
        ready = 0;
    }
    long long now = 0, offset = 0;
    if (ready > 0) {
        PyObject *now_obj = PyObject_CallNoArgs(clock);
        if (now_obj == NULL) return NULL;
        now = PyLong_AsLongLong(now_obj);
        Py_DECREF(now_obj);
        if (now == -1 && PyErr_Occurred()) return NULL;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        offset = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec - now;
    }
    PyObject *slow = PyList_New(0);
    if (slow == NULL) return NULL;
    PyObject *ids[FAST_ROOM];
    long long routed_bytes = 0, coalesced = 0;
    for (int e = 0; e < ready; e++) {
        int fd = events[e].data.fd;
        unsigned int mask = events[e].events;
        PyObject *data = NULL;
        long long stamp = -1;
        PyObject *callback = mask == EPOLLIN ? route_of(fast, fd) : NULL;
        for (Py_ssize_t r = 0; callback != NULL && r < max_reads; r++) {
            ssize_t got = recv_with_stamp(fd, poll_buf, (size_t)read_bytes, MSG_DONTWAIT, &stamp);
            if (got < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    data = PyLong_FromLong(errno);
                    if (data == NULL) goto fail;
                }
                break;
            }
            int count = got > 0 && stamp >= 0
                ? fast_frames((const unsigned char *)poll_buf, got, ids, FAST_ROOM) : 0;
            if (count < 0) goto fail;
            if (count == 0) {  /* end of stream, no receive time, or not only compact replies */
                data = PyBytes_FromStringAndSize(poll_buf, got);
                if (data == NULL) goto fail;
                break;
            }
            long long rx = stamp - offset;
            routed_bytes += got;
            coalesced += count - 1;
            if (deliver(callback, ids, count, rx > now ? now : rx) < 0) goto fail;
            if (got < read_bytes) break;
            callback = route_of(fast, fd);  /* still routed here after the callbacks? */
            if (callback == NULL && PyErr_Occurred()) goto fail;
        }
        if (callback == NULL && data == NULL && PyErr_Occurred()) goto fail;
        if (data != NULL || callback == NULL) {
            PyObject *item = data != NULL ? Py_BuildValue("(iINL)", fd, mask, data, stamp)
                                           : Py_BuildValue("(iIOi)", fd, mask, Py_None, -1);
            if (item == NULL) goto fail;
            int rc = PyList_Append(slow, item);
            Py_DECREF(item);
            if (rc < 0) goto fail;
        }
    }
    return Py_BuildValue("(iNLLLL)", ready, slow, offset, now, routed_bytes, coalesced);
fail:
    Py_DECREF(slow);
    return NULL;
}

/* --- Ticks: bench.fleet.device.Device._sends_py in C ------------------------------------------------------
   One device's messages in time order: the same timeline, the same draws in the same order, the same bytes,
   and device.due_ns and device.next_id kept as the Python generator keeps them. The device's state comes in
   as arguments, and goes back through the two slots (member descriptors) the Python passes: no attribute is
   looked up by name here, so renaming a field of Device cannot leave this file reading a stale one. What is
   rare stays Python and is called through the callables passed at construction, which take and return the
   state they change: an init, the events of a burst after a kind draw of another kind than ``event``, the
   heartbeat's bytes (once) and make, unless make is make_wire, whose WireSend is built here. */
#define SILENCE_NS (30LL * 60 * 1000000000LL)
/* Any span of time at or past this is past every run's end (Ticks refuses an end at or past 2**61). */
#define FAR_NS (1LL << 62)
enum { K_OPEN, K_BURST, K_SILENCE };
enum { P_MAIN, P_BEATS_MID, P_BEATS_END, P_DONE };

typedef struct {
    PyObject_HEAD
    PyObject *device, *due_slot, *next_id_slot;  /* where due_ns and next_id go back: device.<slot> = value */
    PyObject *init, *events_after, *beat_wire, *make;  /* the Python of the rare steps, see Ticks_doc */
    PyObject *wire_type, *rnd, *wire, *bounds, *index, *session_b, *device_b;
    PyObject *beat_parts, *beat_encoded;  /* the heartbeat's (parts, bytes), from beat_wire() */
    long long next_id, last_id, end, session_ns, idle_ns, beat_ns, beat_at;
    double mean, track_limit;
    Py_ssize_t burst;
    int poisson;
    long long t, stop, last, at, nxt;  /* session start and end, previous tick, pending tick, next tick */
    int has_nxt, kind, phase;
    long long b_at, b_until, b_then;  /* the heartbeats under way: next, until, the send due after them */
    int b_then_none;
} TicksObject;

/* int(x) for a span x >= 0 drawn in Python: any span past FAR_NS lands past the end either way. */
static inline long long span(double x) {
    return x < (double)FAR_NS ? (long long)x : FAR_NS;
}

static int Ticks_traverse(TicksObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->device); Py_VISIT(self->due_slot); Py_VISIT(self->next_id_slot); Py_VISIT(self->init);
    Py_VISIT(self->events_after); Py_VISIT(self->beat_wire);
    Py_VISIT(self->make); Py_VISIT(self->wire_type); Py_VISIT(self->rnd);
    Py_VISIT(self->wire); Py_VISIT(self->bounds); Py_VISIT(self->index); Py_VISIT(self->session_b);
    Py_VISIT(self->device_b); Py_VISIT(self->beat_parts); Py_VISIT(self->beat_encoded);
    return 0;
}

static int Ticks_clear(TicksObject *self) {
    Py_CLEAR(self->device); Py_CLEAR(self->due_slot); Py_CLEAR(self->next_id_slot); Py_CLEAR(self->init);
    Py_CLEAR(self->events_after); Py_CLEAR(self->beat_wire);
    Py_CLEAR(self->make); Py_CLEAR(self->wire_type); Py_CLEAR(self->rnd);
    Py_CLEAR(self->wire); Py_CLEAR(self->bounds); Py_CLEAR(self->index); Py_CLEAR(self->session_b);
    Py_CLEAR(self->device_b); Py_CLEAR(self->beat_parts); Py_CLEAR(self->beat_encoded);
    self->phase = P_DONE;
    return 0;
}

static void Ticks_dealloc(TicksObject *self) {
    PyObject_GC_UnTrack(self);
    Ticks_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* device.<slot> = x (None when none), through the slot's descriptor: device.due_ns or device.next_id. */
static int put_ll(TicksObject *self, PyObject *slot, int none, long long x) {
    PyObject *v = none ? Py_NewRef(Py_None) : PyLong_FromLongLong(x);
    if (v == NULL) return -1;
    int rc = Py_TYPE(slot)->tp_descr_set(slot, self->device, v);
    Py_DECREF(v);
    return rc;
}

/* What a callback of the rare steps returned, (value, next_id, b): *value gets value, the next id is taken
   and b (the session's bytes after an init, the device's after events of other kinds) goes to *b_slot.
   Steals res (NULL: the callback raised). */
static int take_back(TicksObject *self, PyObject *res, const char *what, PyObject **value, PyObject **b_slot) {
    if (res == NULL) return -1;
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3 || !PyBytes_Check(PyTuple_GET_ITEM(res, 2))) {
        PyErr_Format(PyExc_TypeError, "Ticks: %s must return (value, next_id, bytes)", what);
        Py_DECREF(res);
        return -1;
    }
    long long next_id = PyLong_AsLongLong(PyTuple_GET_ITEM(res, 1));
    if (next_id == -1 && PyErr_Occurred()) {
        Py_DECREF(res);
        return -1;
    }
    self->next_id = next_id;
    Py_XSETREF(*b_slot, Py_NewRef(PyTuple_GET_ITEM(res, 2)));
    *value = Py_NewRef(PyTuple_GET_ITEM(res, 0));
    Py_DECREF(res);
    return 0;
}

static PyObject *Ticks_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *device, *due_slot, *next_id_slot, *rnd, *index, *session_b, *device_b;
    PyObject *init, *events_after, *beat_wire, *make, *wire_type, *wire, *bounds;
    long long connect, next_id, last_id, beat_ns, beat_at, end, session_ns, idle_ns;
    double mean, limit;
    Py_ssize_t burst;
    int poisson;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Ticks takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "(OOO)(OOLLLO!O!)(OOOO)OLLLLLdpndO!O!:Ticks",
                          &device, &due_slot, &next_id_slot,
                          &rnd, &index, &connect, &next_id, &last_id, &PyBytes_Type, &session_b, &PyBytes_Type,
                          &device_b,
                          &init, &events_after, &beat_wire, &make,
                          &wire_type, &beat_ns, &beat_at, &end, &session_ns, &idle_ns, &mean, &poisson, &burst,
                          &limit, &PyTuple_Type, &wire, &PyTuple_Type, &bounds))
        return NULL;
    if (Py_TYPE(due_slot)->tp_descr_set == NULL || Py_TYPE(next_id_slot)->tp_descr_set == NULL) {
        PyErr_SetString(PyExc_TypeError, "Ticks: the slots must be data descriptors (a class's slots)");
        return NULL;
    }
    if (!PyCallable_Check(init) || !PyCallable_Check(events_after) || !PyCallable_Check(beat_wire) ||
        !PyCallable_Check(make)) {
        PyErr_SetString(PyExc_TypeError, "Ticks: init, events_after, beat_wire and make must be callable");
        return NULL;
    }
    if (wire_type != Py_None && !(PyType_Check(wire_type) &&
                                  PyType_IsSubtype((PyTypeObject *)wire_type, &PyTuple_Type))) {
        PyErr_SetString(PyExc_TypeError, "Ticks: wire_type must be a tuple type or None");
        return NULL;
    }
    if (end < 0 || end >= (1LL << 61) || session_ns < 0 || session_ns >= (1LL << 61) || idle_ns < 0 ||
        idle_ns >= (1LL << 61) || beat_ns < 0 || burst < 1 || !(mean >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "Ticks: times out of range");
        return NULL;
    }
    TicksObject *self = (TicksObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->device = Py_NewRef(device);
    self->due_slot = Py_NewRef(due_slot);
    self->next_id_slot = Py_NewRef(next_id_slot);
    self->init = Py_NewRef(init);
    self->events_after = Py_NewRef(events_after);
    self->beat_wire = Py_NewRef(beat_wire);
    self->make = Py_NewRef(make);
    self->rnd = Py_NewRef(rnd);
    self->index = Py_NewRef(index);
    self->session_b = Py_NewRef(session_b);
    self->device_b = Py_NewRef(device_b);
    self->next_id = next_id;
    self->last_id = last_id;
    self->wire_type = wire_type == Py_None ? NULL : Py_NewRef(wire_type);
    self->wire = Py_NewRef(wire);
    self->bounds = Py_NewRef(bounds);
    self->beat_ns = beat_ns;
    self->beat_at = beat_at;
    self->end = end;
    self->session_ns = session_ns;
    self->idle_ns = idle_ns;
    self->mean = mean;
    self->poisson = poisson;
    self->burst = burst;
    self->track_limit = limit;
    self->t = self->stop = self->last = self->at = self->nxt = connect;
    self->kind = K_OPEN;
    self->has_nxt = connect < end;
    self->phase = P_MAIN;
    return (PyObject *)self;
}

/* The message: make(at, index, parts, ids, created, encoded), or the WireSend make_wire returns for it. */
static PyObject *build(TicksObject *self, long long at, PyObject *parts, PyObject *ids, PyObject *created,
                       PyObject *encoded, Py_ssize_t n) {
    PyObject *at_o = PyLong_FromLongLong(at);
    if (at_o == NULL) return NULL;
    if (self->wire_type == NULL) {
        PyObject *res = created == NULL
            ? PyObject_CallFunctionObjArgs(self->make, at_o, self->index, parts, ids, NULL)
            : PyObject_CallFunctionObjArgs(self->make, at_o, self->index, parts, ids, created, encoded, NULL);
        Py_DECREF(at_o);
        return res;
    }
    PyObject *data = NULL, *times = NULL;
    if (encoded != NULL) {
        data = Py_NewRef(encoded);
    } else {  /* encode_parts: the parts into the scratch buffer, the message joined from it */
        scratch.len = scratch.count = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *part;
            Py_ssize_t size;
            if (bytes_of(PyTuple_GET_ITEM(parts, i), "an event's part", &part, &size) < 0) goto fail;
            char *w = parts_open(&scratch, size);
            if (w == NULL) goto fail;
            memcpy(w, part, (size_t)size);
            parts_close(&scratch, size);
        }
        if ((data = parts_message(&scratch)) == NULL) goto fail;
    }
    if (created != NULL) {
        times = Py_NewRef(created);
    } else {  /* (at,) * len(parts) */
        times = PyTuple_New(n);
        if (times == NULL) goto fail;
        for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(times, i, Py_NewRef(at_o));
    }
    PyTypeObject *tp = (PyTypeObject *)self->wire_type;
    PyObject *res = tp->tp_alloc(tp, 5);
    if (res == NULL) goto fail;
    PyTuple_SET_ITEM(res, 0, at_o);
    PyTuple_SET_ITEM(res, 1, Py_NewRef(self->index));
    PyTuple_SET_ITEM(res, 2, data);
    PyTuple_SET_ITEM(res, 3, Py_NewRef(ids));
    PyTuple_SET_ITEM(res, 4, times);
    return res;
fail:
    Py_DECREF(at_o);
    Py_XDECREF(data);
    Py_XDECREF(times);
    return NULL;
}

static int set_due(TicksObject *self, int none, long long due) {
    return put_ll(self, self->due_slot, none, due);
}

/* Device._beats, one heartbeat: the one at b_at. */
static PyObject *beat(TicksObject *self) {
    if (self->beat_parts == NULL) {
        PyObject *pair = PyObject_CallNoArgs(self->beat_wire);
        if (pair == NULL) return NULL;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(pair, 0))) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "Ticks: beat_wire() must return (parts, encoded)");
            return NULL;
        }
        self->beat_parts = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        self->beat_encoded = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        Py_DECREF(pair);
    }
    long long at = self->b_at, nxt = at + self->beat_ns;
    if (nxt < self->b_until ? set_due(self, 0, nxt) : set_due(self, self->b_then_none, self->b_then)) return NULL;
    self->b_at = nxt;
    PyObject *created = PyTuple_New(1);
    if (created == NULL) return NULL;
    PyObject *at_o = PyLong_FromLongLong(at);
    if (at_o == NULL) {
        Py_DECREF(created);
        return NULL;
    }
    PyTuple_SET_ITEM(created, 0, at_o);
    PyObject *empty = PyTuple_New(0);
    PyObject *res = empty == NULL ? NULL : build(self, at, self->beat_parts, empty, created, self->beat_encoded,
                                                         PyTuple_GET_SIZE(self->beat_parts));
    Py_XDECREF(empty);
    Py_DECREF(created);
    return res;
}

/* One pass of Device._sends_py's loop body: the pending tick's message, the next tick's time drawn. */
static PyObject *tick(TicksObject *self) {
    long long first = self->next_id;
    PyObject *parts = NULL, *message = NULL;  /* the events, or (from the scratch buffer) the message joined */
    Py_ssize_t n_events;
    double u;
    if (self->kind == K_BURST) {
        /* The hot path's WireSend keeps no parts: the events go into the scratch buffer, the message is joined
           from it (when random's own C draws them: nothing else may run in between). */
        int direct = self->wire_type != NULL && PyCFunction_Check(self->rnd);
        PyObject *made = NULL;
        Parts sink = {0};
        if (direct) {
            scratch.len = scratch.count = 0;
        } else if ((made = sink.list = PyList_New(0)) == NULL) {
            return NULL;
        }
        int cut;
        double cut_u = 0.0;
        if (track_core(self->rnd, self->burst, self->track_limit, self->wire, self->bounds, self->session_b,
                       self->device_b, &self->next_id, self->last_id, direct ? &scratch : &sink, &cut,
                       &cut_u) < 0) {
            Py_XDECREF(made);
            return NULL;
        }
        if (direct && !cut) {
            n_events = scratch.count;
            message = parts_message(&scratch);
            if (message == NULL) return NULL;
        } else if (direct && (made = parts_list(&scratch)) == NULL) {
            return NULL;
        }
        if (message == NULL && !cut) {
            parts = PyList_AsTuple(made);
        } else if (message == NULL) {  /* events_after(made, u, n, next_id) -> (parts, next_id, device_b) */
            PyObject *u_o = PyFloat_FromDouble(cut_u), *n_o = PyLong_FromSsize_t(self->burst),
                     *id_o = PyLong_FromLongLong(self->next_id);
            PyObject *res = u_o == NULL || n_o == NULL || id_o == NULL ? NULL
                : PyObject_CallFunctionObjArgs(self->events_after, made, u_o, n_o, id_o, NULL);
            Py_XDECREF(u_o);
            Py_XDECREF(n_o);
            Py_XDECREF(id_o);
            if (take_back(self, res, "events_after", &parts, &self->device_b) == 0 && !PyTuple_Check(parts)) {
                PyErr_SetString(PyExc_TypeError, "Ticks: events_after must return a tuple of parts");
                Py_CLEAR(parts);
            }
        }
        Py_XDECREF(made);
        if (parts == NULL && message == NULL) return NULL;
        if (parts != NULL) n_events = PyTuple_GET_SIZE(parts);
        self->last = self->at;
        if (self->poisson) {
            if (draw(self->rnd, &u) < 0) goto fail;
            self->at += span(-log(1.0 - u) * self->mean);
        } else {
            self->at += span(self->mean);
        }
    } else {
        /* init(next_id) -> (part, next_id, session_b) */
        PyObject *part, *id_o = PyLong_FromLongLong(self->next_id);
        PyObject *res = id_o == NULL ? NULL : PyObject_CallOneArg(self->init, id_o);
        Py_XDECREF(id_o);
        if (take_back(self, res, "init", &part, &self->session_b) < 0) return NULL;
        parts = PyTuple_New(1);
        if (parts == NULL) {
            Py_DECREF(part);
            return NULL;
        }
        PyTuple_SET_ITEM(parts, 0, part);
        n_events = 1;
        if (self->kind == K_OPEN) {
            long long t = self->t = self->last = self->at;
            if (!self->session_ns) {
                self->stop = self->end;
            } else {
                if (draw(self->rnd, &u) < 0) goto fail;
                long long len = span((double)self->session_ns * (0.5 + u));
                if (len < 1) len = 1;
                self->stop = t + len < self->end ? t + len : self->end;
            }
            self->at = self->stop;
            if (self->mean) {
                if (draw(self->rnd, &u) < 0) goto fail;
                self->at = t + (self->poisson ? span(-log(1.0 - u) * self->mean) : span(u * self->mean));
            }
        }
    }
    long long created = self->nxt;
    if (self->kind == K_SILENCE) {  /* its burst, at the same time */
        self->kind = K_BURST;
    } else if (self->at < self->stop) {  /* contract.md, "Sessions": 30 minutes of silence end a session */
        self->kind = self->at - self->last >= SILENCE_NS ? K_SILENCE : K_BURST;
        self->nxt = self->at;
    } else if (self->session_ns) {  /* the session ends; the next opens after an idle gap */
        if (draw(self->rnd, &u) < 0) goto fail;
        self->at = self->stop + span((double)self->idle_ns * (0.5 + u));
        self->kind = K_OPEN;
        self->nxt = self->at;
        self->has_nxt = self->at < self->end;
    } else {
        self->has_nxt = 0;
    }
    int rc = self->has_nxt ? set_due(self, 0, self->nxt <= self->beat_at ? self->nxt : self->beat_at)
                           : set_due(self, self->beat_at >= self->end, self->beat_at);
    if (rc < 0 || put_ll(self, self->next_id_slot, 0, self->next_id) < 0) goto fail;
    long long taken = self->next_id - first;
    PyObject *ids = PyTuple_New((Py_ssize_t)taken);
    if (ids == NULL) goto fail;
    for (long long k = 0; k < taken; k++) {
        PyObject *id = PyLong_FromLongLong(first + k);
        if (id == NULL) {
            Py_DECREF(ids);
            goto fail;
        }
        PyTuple_SET_ITEM(ids, (Py_ssize_t)k, id);
    }
    PyObject *res = build(self, created, parts, ids, NULL, message, n_events);
    Py_DECREF(ids);
    Py_XDECREF(parts);
    Py_XDECREF(message);
    return res;
fail:
    Py_XDECREF(parts);
    Py_XDECREF(message);
    return NULL;
}

static PyObject *Ticks_next(TicksObject *self) {
    PyObject *res = NULL;
    for (;;) {
        if (self->phase == P_DONE) return NULL;
        if (self->phase != P_MAIN) {  /* heartbeats under way (Device._beats) */
            if (self->b_at < self->b_until) {
                res = beat(self);
                break;
            }
            if (self->phase == P_BEATS_END) {
                self->phase = P_DONE;
                return NULL;
            }
            self->beat_at = self->b_at;
            self->phase = P_MAIN;
            res = tick(self);
            break;
        }
        if (!self->has_nxt) {  /* the ticks are over: the heartbeats until the end */
            if (self->beat_at < self->end) {
                self->phase = P_BEATS_END;
                self->b_at = self->beat_at;
                self->b_until = self->end;
                self->b_then_none = 1;
                continue;
            }
            self->phase = P_DONE;
            return NULL;
        }
        if (self->beat_at < self->at) {  /* the heartbeats due before the pending tick */
            self->phase = P_BEATS_MID;
            self->b_at = self->beat_at;
            self->b_until = self->b_then = self->at;
            self->b_then_none = 0;
            continue;
        }
        res = tick(self);
        break;
    }
    if (res == NULL) self->phase = P_DONE;  /* a device that raised is over, as a generator would be */
    return res;
}

PyDoc_STRVAR(Ticks_doc,
"Ticks((device, due_slot, next_id_slot), (rnd, index, connect_ns, next_id, last_id, session_b, device_b),\n"
"      (init, events_after, beat_wire, make), wire_type, beat_ns, beat_at, end, session_ns, idle_ns, mean,\n"
"      poisson, burst, limit, wire, bounds)\n\n"
"An iterator over a device's messages, as bench.fleet.device.Device._sends_py(make, beat_ns) yields them\n"
"(its twin); bench.fleet.device.Device.sends_made builds it. The device's state comes in as the second\n"
"tuple; after each message device.due_ns and device.next_id are set, as the generator sets them, through\n"
"the data descriptors due_slot and next_id_slot (Device.due_ns, Device.next_id). The rare steps are\n"
"Python: init(next_id) -> (part, next_id, session_b) opens a session; events_after(made, u, n, next_id)\n"
"-> (parts, next_id, device_b) ends a burst cut at a kind draw u of another kind; beat_wire() -> (parts,\n"
"encoded) is the heartbeat (called once); make builds a message unless wire_type (WireSend) is given, in\n"
"which case it is built here as make_wire builds it. beat_at is the first heartbeat's time (end: none),\n"
"the others the device's FleetConfig (end_ns, session_ns, idle_ns, burst_gap_ns, poisson, burst,\n"
"limits[0], track_wire, track_bounds).");

static PyTypeObject TicksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bench._native.Ticks",
    .tp_basicsize = sizeof(TicksObject),
    .tp_dealloc = (destructor)Ticks_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Ticks_doc,
    .tp_traverse = (traverseproc)Ticks_traverse,
    .tp_clear = (inquiry)Ticks_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Ticks_next,
    .tp_new = Ticks_new,
};

static PyMethodDef methods[] = {
    {"recv_stamped", (PyCFunction)(void (*)(void))recv_stamped, METH_FASTCALL, recv_stamped_doc},
    {"poll_replies", (PyCFunction)(void (*)(void))poll_replies, METH_FASTCALL, poll_replies_doc},
    {"read_frames", (PyCFunction)(void (*)(void))read_frames, METH_FASTCALL, read_frames_doc},
    {"parse_compact_ack", (PyCFunction)parse_compact_ack, METH_O, parse_compact_ack_doc},
    {"track_run", (PyCFunction)(void (*)(void))track_run, METH_FASTCALL, track_run_doc},
    {"frame_masked", (PyCFunction)(void (*)(void))frame_masked, METH_FASTCALL, frame_masked_doc},
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL, send_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bench._native",
    "The hot path's per-event steps in C, each the exact twin of a pure-Python reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&TicksType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&TicksType);
    if (PyModule_AddObject(m, "Ticks", (PyObject *)&TicksType) < 0) {
        Py_DECREF(&TicksType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
