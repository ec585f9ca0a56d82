/* bench._native, the poll: the C twins of bench/transports/polled.py's reads and writes.

    recv_stamped  the recvmsg branch of PolledSocket.on_readable (SO_TIMESTAMPNS receive times)
    poll_replies  one pass of Poller.poll's loop, with _WsConn.data_received's fast reader for routed replies
    send_frame    PolledSocket.write of frame_text(payload) (the frame built by wire.c's nb_write_frame)

tests/transports run every behaviour both ways; test_transport_native.py checks these calls one by one.
*/
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "native.h"

NB_DOC(nb_send_frame_doc,
"send_frame(fd, payload) -> int | bytes\n\n"
"frame_masked(payload) written to the socket fd with one send(2) that does not wait: the frame's length\n"
"when the kernel took all of it, else the bytes it did not take (all of them when it took none), for the\n"
"caller to write later. Raises OSError for any other failure. The frame is built on the stack (on the heap\n"
"past 4 KiB), never as a bytes object. Its Python twin: socket.send(frame_text(payload)) in\n"
"bench.transports.polled.PolledSocket.write.");

PyObject *nb_send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    NB_EXPECT_NARGS("send_frame", nargs, 2);
    int fd = _PyLong_AsInt(args[0]);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "send_frame: fd must be >= 0");
        return NULL;
    }
    const char *payload, *mask;
    Py_ssize_t n;
    if (bytes_of(args[1], "payload", &payload, &n) < 0) return NULL;
    if ((mask = nb_next_mask()) == NULL) return NULL;
    Py_ssize_t total = nb_frame_size(n);
    unsigned char stack[4096], *buf = stack;
    if (total > (Py_ssize_t)sizeof stack && (buf = PyMem_Malloc((size_t)total)) == NULL) return PyErr_NoMemory();
    nb_write_frame(buf, payload, n, mask);
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

NB_DOC(nb_recv_stamped_doc,
"recv_stamped(fd, nbytes) -> (data, stamp_ns)\n\n"
"One recvmsg(2) of at most nbytes from the socket fd with room for one SCM_TIMESTAMPNS control\n"
"message: the bytes read (b'' at end of stream) and the kernel's receive time in CLOCK_REALTIME ns, or\n"
"-1 when the read carried none. Raises OSError (BlockingIOError when nothing waits), as\n"
"socket.recvmsg does; its twin is the recvmsg branch of bench.transports.polled.PolledSocket.on_readable.");

PyObject *nb_recv_stamped(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    NB_EXPECT_NARGS("recv_stamped", nargs, 2);
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
        if (count == room || nb_frame_head(b + pos, end - pos, &head, &length) <= 0 ||
            (unsigned long long)(end - pos - head) < length)
            goto other;  /* a partial frame, or another kind */
        PyObject *ids = nb_compact_ack(b + pos + head, (Py_ssize_t)length);
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

NB_DOC(nb_poll_replies_doc,
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

PyObject *nb_poll_replies(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    NB_EXPECT_NARGS("poll_replies", nargs, 6);
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
