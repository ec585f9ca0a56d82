/* bench._native, the module: its table of functions and its init (the twins themselves are in plan.c,
wire.c and poll.c; native.h says which Python each one is the twin of; bench/native.py chooses them). */
#include "native.h"

static PyMethodDef methods[] = {
    {"recv_stamped", (PyCFunction)(void (*)(void))nb_recv_stamped, METH_FASTCALL, nb_recv_stamped_doc},
    {"poll_replies", (PyCFunction)(void (*)(void))nb_poll_replies, METH_FASTCALL, nb_poll_replies_doc},
    {"read_frames", (PyCFunction)(void (*)(void))nb_read_frames, METH_FASTCALL, nb_read_frames_doc},
    {"parse_compact_ack", (PyCFunction)nb_parse_compact_ack, METH_O, nb_parse_compact_ack_doc},
    {"track_run", (PyCFunction)(void (*)(void))nb_track_run, METH_FASTCALL, nb_track_run_doc},
    {"frame_masked", (PyCFunction)(void (*)(void))nb_frame_masked, METH_FASTCALL, nb_frame_masked_doc},
    {"send_frame", (PyCFunction)(void (*)(void))nb_send_frame, METH_FASTCALL, nb_send_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bench._native",
    "The hot path's per-event steps in C, each the exact twin of a pure-Python reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&nb_TicksType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&nb_TicksType);
    if (PyModule_AddObject(m, "Ticks", (PyObject *)&nb_TicksType) < 0) {
        Py_DECREF(&nb_TicksType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
