/* The collector's hottest clocks, compiled: the same behaviour as their pure-Python
 * versions in latency_ledger.collect (accounting.Activity, tails.run_delay_ns), which
 * stay the reference and the fallback.
 *
 * Why: each runs at every wait span's edges and around every worker-thread call. In
 * Python, Activity.move was ~4,800 instructions a call (a lock, a dict, the solo
 * stretch's update) and run_delay_ns ~7,400 (a ctypes call, a split, an int); here
 * each is a few hundred. No lock: every method runs start to end holding the
 * interpreter lock and calls nothing that could let it go (no Python code, no
 * blocking call but the pread of a /proc file, made with the lock held on purpose:
 * tails._pread_holding_the_lock says why).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static PyObject *str_solo_ns; /* "solo_ns", interned */

/* time.perf_counter_ns() on Linux: CLOCK_MONOTONIC */
static inline long long
perf_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- Activity ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    long long count;
    long long since_ns;
    long long total_ns;
    PyObject *active;  /* dict: account (or None) -> threads in Python */
    PyObject *solo;    /* the account whose threads alone are in Python, or None */
    long long solo_since_ns;
} Activity;

static int
Activity_init(Activity *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Activity", kwlist)) {
        return -1;
    }
    PyObject *active = PyDict_New();
    if (active == NULL) {
        return -1;
    }
    Py_XSETREF(self->active, active);
    Py_INCREF(Py_None);
    Py_XSETREF(self->solo, Py_None);
    self->count = self->since_ns = self->total_ns = self->solo_since_ns = 0;
    return 0;
}

static int
Activity_traverse(Activity *self, visitproc visit, void *arg)
{
    Py_VISIT(self->active);
    Py_VISIT(self->solo);
    return 0;
}

static int
Activity_clear(Activity *self)
{
    Py_CLEAR(self->active);
    Py_CLEAR(self->solo);
    return 0;
}

static void
Activity_dealloc(Activity *self)
{
    PyObject_GC_UnTrack(self);
    Activity_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* acct.solo_ns as a C integer (0 if it cannot be read) */
static long long
solo_ns_of(PyObject *acct)
{
    PyObject *value = PyObject_GetAttr(acct, str_solo_ns);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long ns = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (ns == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return ns;
}

static int
add_solo_ns(PyObject *acct, long long ns)
{
    PyObject *value = PyLong_FromLongLong(solo_ns_of(acct) + ns);
    if (value == NULL) {
        return -1;
    }
    int failed = PyObject_SetAttr(acct, str_solo_ns, value);
    Py_DECREF(value);
    return failed;
}

static int
Activity_move_impl(Activity *self, PyObject *acct, long long step)
{
    long long count = self->count;
    if (step < 0 && count == 0) {
        return 0;
    }
    long long now = perf_ns();
    if (count == 0) {
        self->since_ns = now;
    }
    self->count = count = count + step;
    if (count == 0) {
        self->total_ns += now - self->since_ns;
    }
    PyObject *active = self->active;
    long long left = step;
    PyObject *had = PyDict_GetItemWithError(active, acct); /* borrowed */
    if (had != NULL) {
        left += PyLong_AsLongLong(had);
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    if (left > 0) {
        PyObject *value = PyLong_FromLongLong(left);
        if (value == NULL) {
            return -1;
        }
        int failed = PyDict_SetItem(active, acct, value);
        Py_DECREF(value);
        if (failed) {
            return -1;
        }
    }
    else if (had != NULL && PyDict_DelItem(active, acct) < 0) {
        return -1;
    }
    PyObject *solo = Py_None;
    if (PyDict_GET_SIZE(active) == 1) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        PyDict_Next(active, &pos, &key, &value);
        solo = key;
    }
    PyObject *was = self->solo;
    if (solo != was) {
        if (was != Py_None && add_solo_ns(was, now - self->solo_since_ns) < 0) {
            return -1;
        }
        Py_INCREF(solo);
        Py_SETREF(self->solo, solo);
        self->solo_since_ns = now;
    }
    return 0;
}

static PyObject *
Activity_move(Activity *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "move(acct, step)");
        return NULL;
    }
    long long step = PyLong_AsLongLong(args[1]);
    if (step == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (Activity_move_impl(self, args[0], step) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Activity_enter(Activity *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "enter(acct=None)");
        return NULL;
    }
    if (Activity_move_impl(self, nargs ? args[0] : Py_None, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Activity_leave(Activity *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "leave(acct=None)");
        return NULL;
    }
    if (Activity_move_impl(self, nargs ? args[0] : Py_None, -1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Activity_read(Activity *self, PyObject *Py_UNUSED(ignored))
{
    if (self->count) {
        return PyLong_FromLongLong(self->total_ns + perf_ns() - self->since_ns);
    }
    return PyLong_FromLongLong(self->total_ns);
}

static PyObject *
Activity_read_others(Activity *self, PyObject *acct)
{
    long long total = self->total_ns - solo_ns_of(acct);
    if (self->count) {
        long long now = perf_ns();
        total += now - self->since_ns;
        if (self->solo == acct) {
            total -= now - self->solo_since_ns;
        }
    }
    return PyLong_FromLongLong(total);
}

static PyMethodDef Activity_methods[] = {
    {"move", (PyCFunction)(void (*)(void))Activity_move, METH_FASTCALL,
     "move(acct, step): a thread of acct enters Python (1) or leaves it (-1)."},
    {"enter", (PyCFunction)(void (*)(void))Activity_enter, METH_FASTCALL,
     "enter(acct=None)"},
    {"leave", (PyCFunction)(void (*)(void))Activity_leave, METH_FASTCALL,
     "leave(acct=None)"},
    {"read", (PyCFunction)Activity_read, METH_NOARGS, "The clock, in ns."},
    {"read_others", (PyCFunction)Activity_read_others, METH_O,
     "The clock less the stretches when only acct's own threads were in Python."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Activity_members[] = {
    {"count", T_LONGLONG, offsetof(Activity, count), READONLY, NULL},
    {"since_ns", T_LONGLONG, offsetof(Activity, since_ns), READONLY, NULL},
    {"total_ns", T_LONGLONG, offsetof(Activity, total_ns), READONLY, NULL},
    {"active", T_OBJECT, offsetof(Activity, active), READONLY, NULL},
    {"solo", T_OBJECT, offsetof(Activity, solo), READONLY, NULL},
    {"solo_since_ns", T_LONGLONG, offsetof(Activity, solo_since_ns), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ActivityType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "latency_ledger_speedups._speedups.Activity",
    .tp_doc = "The interpreter lock's busy clock (latency_ledger.collect.accounting.Activity).",
    .tp_basicsize = sizeof(Activity),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Activity_init,
    .tp_dealloc = (destructor)Activity_dealloc,
    .tp_traverse = (traverseproc)Activity_traverse,
    .tp_clear = (inquiry)Activity_clear,
    .tp_methods = Activity_methods,
    .tp_members = Activity_members,
};

/* ---- run_delay_ns --------------------------------------------------------------- */

/* Each thread's /proc/thread-self/schedstat descriptor, opened on its first read and
 * closed when the thread ends (the key's destructor). Stored as fd + 2; 1 means the
 * file could not be opened (every read then answers 0, as the Python version does). */
static pthread_key_t schedstat_key;

static void
close_schedstat(void *value)
{
    intptr_t stored = (intptr_t)value;
    if (stored >= 2) {
        close((int)(stored - 2));
    }
}

static PyObject *
run_delay_ns(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    intptr_t stored = (intptr_t)pthread_getspecific(schedstat_key);
    if (stored == 0) {
        int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        stored = fd >= 0 ? fd + 2 : 1;
        pthread_setspecific(schedstat_key, (void *)stored);
    }
    if (stored < 2) {
        return PyLong_FromLong(0);
    }
    char buf[64];
    ssize_t size = pread((int)(stored - 2), buf, sizeof(buf) - 1, 0);
    if (size <= 0) {
        return PyLong_FromLong(0);
    }
    buf[size] = '\0';
    /* "<on-cpu ns> <run delay ns> <slices>\n": the second field */
    char *p = buf;
    while (*p >= '0' && *p <= '9') {
        p++;
    }
    while (*p == ' ') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return PyLong_FromLong(0);
    }
    unsigned long long delay = 0;
    while (*p >= '0' && *p <= '9') {
        delay = delay * 10 + (unsigned long long)(*p - '0');
        p++;
    }
    return PyLong_FromUnsignedLongLong(delay);
}

static PyObject *
forget_run_delay_file(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    /* in a forked child: the inherited descriptor names the parent's thread */
    close_schedstat(pthread_getspecific(schedstat_key));
    pthread_setspecific(schedstat_key, NULL);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"run_delay_ns", run_delay_ns, METH_NOARGS,
     "How long this thread has waited for a CPU, in ns (/proc/thread-self/schedstat)."},
    {"forget_run_delay_file", forget_run_delay_file, METH_NOARGS,
     "Close this thread's schedstat file (a forked child's, which names its parent's)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "latency_ledger_speedups._speedups",
    .m_doc = "The collector's hottest clocks, compiled.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (pthread_key_create(&schedstat_key, close_schedstat) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_key_create failed");
        return NULL;
    }
    str_solo_ns = PyUnicode_InternFromString("solo_ns");
    if (str_solo_ns == NULL || PyType_Ready(&ActivityType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ActivityType);
    if (PyModule_AddObject(module, "Activity", (PyObject *)&ActivityType) < 0) {
        Py_DECREF(&ActivityType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
