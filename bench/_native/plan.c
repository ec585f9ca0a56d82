/* bench._native, the plan: the C twins of bench/fleet/device.py's per-event steps.

    track_run  Device._events_py's loop over runs of the common ``event`` kind (Device._events uses it)
    Ticks      Device._sends_py, a device's timeline (Device.sends_made builds it with the device's state)

The same draws in the same order, the same bytes; tests/fleet/test_fleet_native.py compares them.
*/
#include <math.h>

#include "native.h"

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


NB_DOC(nb_track_run_doc,
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

PyObject *nb_track_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    NB_EXPECT_NARGS("track_run", nargs, 10);
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

PyTypeObject nb_TicksType = {
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
