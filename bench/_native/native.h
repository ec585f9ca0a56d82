/* bench._native's shared header: what the files of bench/_native/ use of each other.

bench._native holds the hot path's per-event steps in C, each the exact twin of a pure-Python reference.
Why: a 10-event message costs the plan ~1.4 CPU-us per event in Python (three random draws, a bisect, a
bytes format, an append), most of what the hot path spends per event outside the socket. Here the same
draws and bytes cost a fraction of that. Nothing here decides anything the Python code does not: each
function names the Python it replaces, takes the same inputs, makes the same random draws in the same order
and returns the same bytes; tests compare both. When the module is not built (no compiler), the Python runs
instead, with the same results (bench.native chooses, once per process).

    module.c  the module table and its init
    plan.c    track_run, Ticks: bench.fleet.device's Device._events_py and Device._sends_py
    wire.c    frame_masked, read_frames, parse_compact_ack: bench.transports.ws's frame_text_py and
              _WsConn._read_fast_py, bench.protocol.message.parse_ack_ids
    poll.c    recv_stamped, poll_replies, send_frame: bench.transports.polled's PolledSocket and Poller

Names shared between files start with nb_ (the extension's symbols are not exported, but stay apart from any
library's).
*/
#ifndef BENCH_NATIVE_H
#define BENCH_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

/* A method's docstring, defined in its file and named in module.c's table. */
#define NB_DOC(name, str) const char name[] = PyDoc_STR(str)
/* A fast-call function given other than n arguments raises the TypeError Python's own functions raise. */
#define NB_EXPECT_NARGS(fname, nargs, n)                                                              \
    do {                                                                                             \
        if ((nargs) != (n)) {                                                                        \
            PyErr_Format(PyExc_TypeError, fname " takes %d arguments (%zd given)", (int)(n), (nargs)); \
            return NULL;                                                                             \
        }                                                                                            \
    } while (0)

static inline int bytes_of(PyObject *o, const char *what, const char **p, Py_ssize_t *n) {
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
}

/* --- plan.c --------------------------------------------------------------------------------------------- */
extern const char nb_track_run_doc[];
PyObject *nb_track_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
extern PyTypeObject nb_TicksType;

/* --- wire.c --------------------------------------------------------------------------------------------- */
extern const char nb_frame_masked_doc[], nb_read_frames_doc[], nb_parse_compact_ack_doc[];
PyObject *nb_frame_masked(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *nb_read_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *nb_parse_compact_ack(PyObject *self, PyObject *arg);
/* A fresh 4-byte masking key (RFC 6455, 5.3) from a pool filled by getrandom(2); NULL with an error set. */
const char *nb_next_mask(void);
/* The length of a masked frame around n bytes of payload: header, key, payload. */
static inline Py_ssize_t nb_frame_size(Py_ssize_t n) {
    return (n < 126 ? 2 : (n < 65536 ? 4 : 10)) + 4 + n;
}
/* A masked, final text frame around payload[0:n] with the key mask, written at w (nb_frame_size(n) bytes). */
void nb_write_frame(unsigned char *w, const char *payload, Py_ssize_t n, const char *mask);
/* The ids of the compact reply {"reportedIds":[...]} as a new tuple; NULL without an error for any other. */
PyObject *nb_compact_ack(const unsigned char *p, Py_ssize_t n);
/* 1: a complete final unmasked text/binary frame header (*head, *length); 0: need more; -1: another kind. */
int nb_frame_head(const unsigned char *b, Py_ssize_t avail, Py_ssize_t *head, unsigned long long *length);

/* --- poll.c --------------------------------------------------------------------------------------------- */
extern const char nb_recv_stamped_doc[], nb_poll_replies_doc[], nb_send_frame_doc[];
PyObject *nb_recv_stamped(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *nb_poll_replies(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *nb_send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
