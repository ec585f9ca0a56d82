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
#include <sys/socket.h>
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
    const char *sess, *dev;
    Py_ssize_t sess_n, dev_n;
    if (bytes_of(args[5], "session_b", &sess, &sess_n) < 0 || bytes_of(args[6], "device_b", &dev, &dev_n) < 0)
        return NULL;
    PyObject *stop = NULL;  /* the u that stopped the run, or NULL: n events made */
    for (Py_ssize_t k = 0; k < n; k++) {
        double u, name_u, tail_u;
        if (draw(rnd, &u) < 0) return NULL;
        if (!(u < limit)) {
            stop = PyFloat_FromDouble(u);
            if (stop == NULL) return NULL;
            break;
        }
        if (draw(rnd, &name_u) < 0) return NULL;
        Py_ssize_t at;
        if (bisect_floats(bounds, name_u, &at) < 0) return NULL;
        if (at >= PyTuple_GET_SIZE(wire)) {
            PyErr_SetString(PyExc_IndexError, "track_run: the name draw is past the last template");
            return NULL;
        }
        PyObject *tmpl = PyTuple_GET_ITEM(wire, at);
        if (!PyTuple_Check(tmpl) || PyTuple_GET_SIZE(tmpl) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(tmpl, 1))) {
            PyErr_SetString(PyExc_TypeError, "track_run: a template must be (head, tails)");
            return NULL;
        }
        if (event_id > last_id) {
            stop = PyFloat_FromDouble(-1.0);
            if (stop == NULL) return NULL;
            break;
        }
        PyObject *tails = PyTuple_GET_ITEM(tmpl, 1);
        Py_ssize_t ntails = PyTuple_GET_SIZE(tails);
        if (draw(rnd, &tail_u) < 0) return NULL;
        Py_ssize_t pick = (Py_ssize_t)(tail_u * (double)ntails);
        if (pick < 0 || pick >= ntails) {
            PyErr_SetString(PyExc_IndexError, "track_run: the payload draw is out of range");
            return NULL;
        }
        const char *head, *tail;
        Py_ssize_t head_n, tail_n;
        if (bytes_of(PyTuple_GET_ITEM(tmpl, 0), "a template's head", &head, &head_n) < 0 ||
            bytes_of(PyTuple_GET_ITEM(tails, pick), "a template's tail", &tail, &tail_n) < 0)
            return NULL;
        char digits[24];
        int dn = snprintf(digits, sizeof digits, "%lld", event_id);
        PyObject *part = PyBytes_FromStringAndSize(NULL, head_n + sess_n + dn + dev_n + tail_n);
        if (part == NULL) return NULL;
        char *w = PyBytes_AS_STRING(part);
        memcpy(w, head, head_n); w += head_n;
        memcpy(w, sess, sess_n); w += sess_n;
        memcpy(w, digits, dn); w += dn;
        memcpy(w, dev, dev_n); w += dev_n;
        memcpy(w, tail, tail_n);
        int rc = PyList_Append(out, part);
        Py_DECREF(part);
        if (rc < 0) return NULL;
        event_id++;
    }
    if (stop == NULL) {
        stop = Py_None;
        Py_INCREF(stop);
    }
    PyObject *id = PyLong_FromLongLong(event_id);
    if (id == NULL) {
        Py_DECREF(stop);
        return NULL;
    }
    PyObject *res = PyTuple_Pack(2, id, stop);
    Py_DECREF(id);
    Py_DECREF(stop);
    return res;
}

PyDoc_STRVAR(frame_masked_doc,
"frame_masked(payload, mask) -> bytes\n\n"
"One masked, final text frame (RFC 6455, 5.2) around payload with the 4-byte masking key mask: the\n"
"bytes of bench.transports.ws.frame_text's Python twin (header + mask + apply_mask(payload, mask)),\n"
"built in one allocation.");

static PyObject *frame_masked(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "frame_masked takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    const char *payload, *mask;
    Py_ssize_t n, mask_n;
    if (bytes_of(args[0], "payload", &payload, &n) < 0 || bytes_of(args[1], "mask", &mask, &mask_n) < 0)
        return NULL;
    if (mask_n != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, not %zd", mask_n);
        return NULL;
    }
    Py_ssize_t head = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, head + 4 + n);
    if (frame == NULL) return NULL;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(frame);
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
    return frame;
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
        unsigned long long length = b[pos + 1];
        if ((b[pos] != 0x81 && b[pos] != 0x82) || (length & 0x80)) {
            other = 1;
            break;
        }
        Py_ssize_t head = 2;
        if (length == 126) {
            if (end - pos < 4) break;
            head = 4;
            length = ((unsigned long long)b[pos + 2] << 8) | b[pos + 3];
        } else if (length == 127) {
            if (end - pos < 10) break;
            head = 10;
            length = 0;
            for (int i = 0; i < 8; i++) length = (length << 8) | b[pos + 2 + i];
        }
        if (length > (unsigned long long)max_len) {
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

PyDoc_STRVAR(pending_add_doc,
"pending_add(pending, ids, msg) -> int\n\n"
"pending.setdefault(i, msg) for each id of the tuple ids, in order (bench.metrics.tracker.AckTracker.\n"
"on_send's Python twin: the first send of an id stays); returns how many keys pending gained.");

static PyObject *pending_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "pending_add takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *pending = args[0], *ids = args[1], *msg = args[2];
    if (!PyDict_Check(pending) || !PyTuple_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "pending_add: pending must be a dict, ids a tuple");
        return NULL;
    }
    Py_ssize_t before = PyDict_GET_SIZE(pending), n = PyTuple_GET_SIZE(ids);
    for (Py_ssize_t k = 0; k < n; k++) {
        if (PyDict_SetDefault(pending, PyTuple_GET_ITEM(ids, k), msg) == NULL) return NULL;
    }
    return PyLong_FromSsize_t(PyDict_GET_SIZE(pending) - before);
}

PyDoc_STRVAR(pop_acked_doc,
"pop_acked(pending, finished, msg, ids, state) -> list | None\n\n"
"The full ack of a message, as bench.metrics.tracker.AckTracker._ack_all's Python twin does it: pops\n"
"every id of the tuple ids from pending (firsts: what each held, or None); when all of them held msg,\n"
"sets finished[i] = state for each and returns None, else returns firsts (the caller acks id by id).");

static PyObject *pop_acked(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "pop_acked takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *pending = args[0], *finished = args[1], *msg = args[2], *ids = args[3], *state = args[4];
    if (!PyDict_Check(pending) || !PyDict_Check(finished) || !PyTuple_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "pop_acked: pending and finished must be dicts, ids a tuple");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(ids);
    PyObject *firsts = PyList_New(n);
    if (firsts == NULL) return NULL;
    int all = 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *id = PyTuple_GET_ITEM(ids, k);
        PyObject *held = PyDict_GetItemWithError(pending, id);
        if (held != NULL) {
            Py_INCREF(held);
            if (PyDict_DelItem(pending, id) < 0) {
                Py_DECREF(held);
                goto fail;
            }
        } else if (PyErr_Occurred()) {
            goto fail;
        } else {
            held = Py_None;
            Py_INCREF(held);
        }
        if (held != msg) all = 0;
        PyList_SET_ITEM(firsts, k, held);
    }
    if (!all) return firsts;
    Py_DECREF(firsts);
    for (Py_ssize_t k = 0; k < n; k++) {
        if (PyDict_SetItem(finished, PyTuple_GET_ITEM(ids, k), state) < 0) return NULL;
    }
    Py_RETURN_NONE;
fail:
    Py_DECREF(firsts);
    return NULL;
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
    struct iovec iov = {PyBytes_AS_STRING(data), (size_t)nbytes};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof control.buf;
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = recvmsg(fd, &mh, 0);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        Py_DECREF(data);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    long long stamp = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);  /* the one control message these sockets ask for */
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    if (got < nbytes && _PyBytes_Resize(&data, got) < 0) return NULL;
    PyObject *res = Py_BuildValue("(NL)", data, stamp);
    return res;
}

/* --- Merge: bench.fleet.plan.Plan._merge_py in C ----------------------------------------------------------
   The devices of a shard merged by (due time, position): a binary heap of (due_ns, pos) pairs in a C array
   instead of a list of Python ints, the loop in C. The devices themselves stay Python: start(pos) builds a
   device and its generator when its connect time comes up, and each send is next() of its generator, which
   sets device.due_ns to the time of its next send (None: no more). Keys are unique (pos), so the order of
   the sends is that of _merge_py whatever the heap's layout. */
typedef struct {
    long long due;
    Py_ssize_t pos;
} MergeKey;

typedef struct {
    PyObject_HEAD
    MergeKey *heap;
    Py_ssize_t n;           /* keys in the heap */
    Py_ssize_t size;        /* positions */
    PyObject **devices;     /* per position: the device, or NULL (not started, or done) */
    PyObject **gens;        /* per position: its generator, or NULL */
    PyObject *start;        /* start(pos) -> (device, generator) */
    int failed;             /* a device raised: the merge is over, as a Python generator would be */
} MergeObject;

static PyObject *due_name;  /* "due_ns", interned */

static inline int key_less(MergeKey a, MergeKey b) {
    return a.due < b.due || (a.due == b.due && a.pos < b.pos);
}

static void sift_down(MergeKey *h, Py_ssize_t n, Py_ssize_t i) {
    MergeKey item = h[i];
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && key_less(h[c + 1], h[c])) c++;
        if (!key_less(h[c], item)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = item;
}

static int Merge_traverse(MergeObject *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->size; i++) {
        Py_VISIT(self->devices[i]);
        Py_VISIT(self->gens[i]);
    }
    Py_VISIT(self->start);
    return 0;
}

static int Merge_clear(MergeObject *self) {
    for (Py_ssize_t i = 0; i < self->size; i++) {
        Py_CLEAR(self->devices[i]);
        Py_CLEAR(self->gens[i]);
    }
    Py_CLEAR(self->start);
    self->n = 0;
    return 0;
}

static void Merge_dealloc(MergeObject *self) {
    PyObject_GC_UnTrack(self);
    Merge_clear(self);
    PyMem_Free(self->heap);
    PyMem_Free(self->devices);
    PyMem_Free(self->gens);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Merge_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *times, *start;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Merge takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O:Merge", &PyList_Type, &times, &start)) return NULL;
    if (!PyCallable_Check(start)) {
        PyErr_SetString(PyExc_TypeError, "Merge: start must be callable");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(times);
    MergeObject *self = (MergeObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->heap = PyMem_Calloc(n ? n : 1, sizeof(MergeKey));
    self->devices = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    self->gens = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (self->heap == NULL || self->devices == NULL || self->gens == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->size = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long t = PyLong_AsLongLong(PyList_GET_ITEM(times, i));
        if (t == -1 && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
        self->heap[i].due = t;
        self->heap[i].pos = i;
    }
    self->n = n;
    for (Py_ssize_t i = n / 2 - 1; i >= 0; i--) sift_down(self->heap, n, i);
    Py_INCREF(start);
    self->start = start;
    return (PyObject *)self;
}

static PyObject *Merge_next(MergeObject *self) {
    while (self->n > 0 && !self->failed) {
        Py_ssize_t pos = self->heap[0].pos;
        PyObject *send = NULL;
        if (self->gens[pos] == NULL) {  /* its connect time: the device comes online now */
            PyObject *made = PyObject_CallFunction(self->start, "n", pos);
            if (made == NULL) goto fail;
            if (!PyTuple_Check(made) || PyTuple_GET_SIZE(made) != 2) {
                Py_DECREF(made);
                PyErr_SetString(PyExc_TypeError, "Merge: start must return (device, generator)");
                goto fail;
            }
            self->devices[pos] = Py_NewRef(PyTuple_GET_ITEM(made, 0));
            self->gens[pos] = Py_NewRef(PyTuple_GET_ITEM(made, 1));
            Py_DECREF(made);
        } else {
            send = PyIter_Next(self->gens[pos]);
            if (send == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_RuntimeError, "Merge: a device's sends ended while it was due");
                goto fail;
            }
        }
        PyObject *due = PyObject_GetAttr(self->devices[pos], due_name);
        if (due == NULL) {
            Py_XDECREF(send);
            goto fail;
        }
        if (due == Py_None) {
            Py_DECREF(due);
            Py_CLEAR(self->devices[pos]);  /* done, and out of the heap: never started again */
            Py_CLEAR(self->gens[pos]);
            self->n--;
            if (self->n > 0) {
                self->heap[0] = self->heap[self->n];
                sift_down(self->heap, self->n, 0);
            }
        } else {
            long long t = PyLong_AsLongLong(due);
            Py_DECREF(due);
            if (t == -1 && PyErr_Occurred()) {
                Py_XDECREF(send);
                goto fail;
            }
            self->heap[0].due = t;
            sift_down(self->heap, self->n, 0);
        }
        if (send != NULL) return send;
    }
    return NULL;
fail:
    self->failed = 1;
    return NULL;
}

PyDoc_STRVAR(Merge_doc,
"Merge(times, start)\n\n"
"An iterator over the sends of devices 0 .. len(times) - 1 merged by (due time, position), as\n"
"bench.fleet.plan.Plan._merge_py yields them: device pos comes online at times[pos] (start(pos) returns\n"
"(device, generator)); then each send is next(generator), after which device.due_ns is the time of its\n"
"next send, or None when it has no more.");

static PyTypeObject MergeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bench._native.Merge",
    .tp_basicsize = sizeof(MergeObject),
    .tp_dealloc = (destructor)Merge_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Merge_doc,
    .tp_traverse = (traverseproc)Merge_traverse,
    .tp_clear = (inquiry)Merge_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Merge_next,
    .tp_new = Merge_new,
};

static PyMethodDef methods[] = {
    {"recv_stamped", (PyCFunction)(void (*)(void))recv_stamped, METH_FASTCALL, recv_stamped_doc},
    {"pending_add", (PyCFunction)(void (*)(void))pending_add, METH_FASTCALL, pending_add_doc},
    {"pop_acked", (PyCFunction)(void (*)(void))pop_acked, METH_FASTCALL, pop_acked_doc},
    {"read_frames", (PyCFunction)(void (*)(void))read_frames, METH_FASTCALL, read_frames_doc},
    {"parse_compact_ack", (PyCFunction)parse_compact_ack, METH_O, parse_compact_ack_doc},
    {"track_run", (PyCFunction)(void (*)(void))track_run, METH_FASTCALL, track_run_doc},
    {"frame_masked", (PyCFunction)(void (*)(void))frame_masked, METH_FASTCALL, frame_masked_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bench._native",
    "The hot path's per-event steps in C, each the exact twin of a pure-Python reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    due_name = PyUnicode_InternFromString("due_ns");
    if (due_name == NULL || PyType_Ready(&MergeType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&MergeType);
    if (PyModule_AddObject(m, "Merge", (PyObject *)&MergeType) < 0) {
        Py_DECREF(&MergeType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
