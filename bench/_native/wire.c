/* bench._native, the wire: the C twins of the WebSocket framing and of the reply's parse.

    frame_masked       bench/transports/ws.py's frame_text_py (RFC 6455, 5.2-5.3)
    read_frames        bench/transports/ws.py's _WsConn._read_fast_py
    parse_compact_ack  bench/protocol/message.py's parse_ack_ids, for the compact reply only

tests/transports/test_transport_native.py compares them with their twins, byte for byte.
*/
#include <sys/random.h>

#include "native.h"

NB_DOC(nb_frame_masked_doc,
"frame_masked(payload[, mask]) -> bytes\n\n"
"One masked, final text frame (RFC 6455, 5.2) around payload with the 4-byte masking key mask (without\n"
"one: a fresh key from a pool filled by getrandom(2), as RFC 6455, 5.3 asks): the\n"
"bytes of bench.transports.ws.frame_text's Python twin (header + mask + apply_mask(payload, mask)),\n"
"built in one allocation.");

/* Masking keys drawn by frame_masked itself: a pool from the kernel's random source (getrandom(2), what
   os.urandom reads), refilled every 16,384 frames, as bench.transports.ws._Masks does for the Python twin. */
static unsigned char mask_pool[1 << 16];
static size_t mask_at = sizeof mask_pool;

const char *nb_next_mask(void) {
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


/* A masked, final text frame around payload[0:n] with the 4-byte key mask, written at w (nb_frame_size(n)
   bytes). */
void nb_write_frame(unsigned char *w, const char *payload, Py_ssize_t n, const char *mask) {
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

PyObject *nb_frame_masked(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1 && nargs != 2) {
        PyErr_Format(PyExc_TypeError, "frame_masked takes 1 or 2 arguments (%zd given)", nargs);
        return NULL;
    }
    const char *payload, *mask;
    Py_ssize_t n, mask_n = 4;
    if (bytes_of(args[0], "payload", &payload, &n) < 0) return NULL;
    if (nargs == 1) {
        if ((mask = nb_next_mask()) == NULL) return NULL;
    } else if (bytes_of(args[1], "mask", &mask, &mask_n) < 0) {
        return NULL;
    }
    if (mask_n != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, not %zd", mask_n);
        return NULL;
    }
    Py_ssize_t total = nb_frame_size(n);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, total);
    if (frame == NULL) return NULL;
    nb_write_frame((unsigned char *)PyBytes_AS_STRING(frame), payload, n, mask);
    return frame;
}

/* The ids of the compact reply {"reportedIds":[i,...]} (no whitespace, non-negative integers of at most 15
   digits, no leading zero): a new tuple, or NULL without an error for anything else (the Python parse
   decides). Every reply accepted here is one that bench.protocol.message.parse_ack_ids parses to the same
   tuple. */
static const char ACK_HEAD[] = "{\"reportedIds\":[";

PyObject *nb_compact_ack(const unsigned char *p, Py_ssize_t n) {
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
int nb_frame_head(const unsigned char *b, Py_ssize_t avail, Py_ssize_t *head, unsigned long long *length) {
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

NB_DOC(nb_read_frames_doc,
"read_frames(buf, max_len) -> (items, pos, other)\n\n"
"The complete final unmasked text/binary frames at the start of buf (bench.transports.ws._WsConn's\n"
"fast reader, _read_fast_py, in C): items holds, per frame in order, the tuple of ids when its payload\n"
"is the compact reply {\"reportedIds\":[...]} of integers, else the payload's bytes (for the Python\n"
"parse); pos is where the frames read end; other is True when the frame at pos is of another kind or\n"
"longer than max_len (the protocol's to read), False when buf ends there or with a partial frame.");

PyObject *nb_read_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    NB_EXPECT_NARGS("read_frames", nargs, 2);
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
        int kind = nb_frame_head(b + pos, end - pos, &head, &length);
        if (kind == 0) break;
        if (kind < 0 || length > (unsigned long long)max_len) {
            other = 1;
            break;
        }
        if ((unsigned long long)(end - pos - head) < length) break;
        const unsigned char *payload = b + pos + head;
        Py_ssize_t n = (Py_ssize_t)length;
        PyObject *item = nb_compact_ack(payload, n);
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

NB_DOC(nb_parse_compact_ack_doc,
"parse_compact_ack(data) -> tuple | None\n\n"
"The ids of the compact reply {\"reportedIds\":[...]} of integers, the same tuple as\n"
"bench.protocol.message.parse_ack_ids gives; None for any other reply (parse it in Python).");

PyObject *nb_parse_compact_ack(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *ids = nb_compact_ack((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    if (ids == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return ids;
}
