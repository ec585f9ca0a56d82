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
#include <string.h>

/* One draw of the device's stream: ``rnd()`` (a bound ``random.Random.random``). */
static inline int draw(PyObject *rnd, double *out) {
    PyObject *r = PyObject_CallNoArgs(rnd);
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

static PyMethodDef methods[] = {
    {"track_run", (PyCFunction)(void (*)(void))track_run, METH_FASTCALL, track_run_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bench._native",
    "The hot path's per-event steps in C, each the exact twin of a pure-Python reference.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
