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

/* every type here: untracked, its references cleared (its tp_clear), freed */
static void
gc_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_clear(self);
    Py_TYPE(self)->tp_free(self);
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
    .tp_dealloc = gc_dealloc,
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

static long long
read_run_delay(void)
{
    intptr_t stored = (intptr_t)pthread_getspecific(schedstat_key);
    if (stored == 0) {
        int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        stored = fd >= 0 ? fd + 2 : 1;
        pthread_setspecific(schedstat_key, (void *)stored);
    }
    if (stored < 2) {
        return 0;
    }
    char buf[64];
    ssize_t size = pread((int)(stored - 2), buf, sizeof(buf) - 1, 0);
    if (size <= 0) {
        return 0;
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
        return 0;
    }
    unsigned long long delay = 0;
    while (*p >= '0' && *p <= '9') {
        delay = delay * 10 + (unsigned long long)(*p - '0');
        p++;
    }
    return (long long)delay;
}

static PyObject *
run_delay_ns(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(read_run_delay());
}

static PyObject *
forget_run_delay_file(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    /* in a forked child: the inherited descriptor names the parent's thread */
    close_schedstat(pthread_getspecific(schedstat_key));
    pthread_setspecific(schedstat_key, NULL);
    Py_RETURN_NONE;
}

/* ---- TimedCoroutine ------------------------------------------------------------ */

/* What steps.py's TimedCoroutine reads, handed over once by configure_steps(): the
 * thread's segment holder (PER_THREAD), the request's account (CURRENT), the process's
 * charged counter (CHARGED), steps.py's globals (where _STEP_DUE is looked up at each
 * step, as the Python version does, so a test's meter takes effect), the Python
 * function that runs a measured step, and the three thresholds. */
static PyObject *cfg_per_thread, *cfg_current, *cfg_charged, *cfg_globals, *cfg_measured;
static long long cfg_streak_gap_ns, cfg_burst_ns, cfg_short_ns;
static PyObject *s_seg, *s_acct, *s_t0, *s_clock_ns, *s_clock_at_ns, *s_last_end_ns,
    *s_streak_start_ns, *s_busy_ns, *s_clock_starts, *s_loop_ns, *s_steps, *s_charged_ns,
    *s_depth, *s_cpu_ns, *s_ns, *s_step_due, *s_throw, *s_close, *s_free_steps;

static inline long long
clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* obj.name as a C integer; 0 (error cleared) when it cannot be read */
static long long
get_ll(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long n = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return n;
}

static void
set_ll(PyObject *obj, PyObject *name, long long n)
{
    PyObject *value = PyLong_FromLongLong(n);
    if (value == NULL || PyObject_SetAttr(obj, name, value) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(value);
}

static void
set_obj(PyObject *obj, PyObject *name, PyObject *value)
{
    if (PyObject_SetAttr(obj, name, value) < 0) {
        PyErr_Clear();
    }
}

/* A slot (``__slots__`` member) of one of steps.py's classes, read and written at its
 * offset in the object when the object is of that class (a subclass keeps the offset),
 * as the interpreter's member descriptor does, without the attribute lookup around it:
 * that lookup was most of a compiled step's cost (~200 instructions an access, ~30
 * accesses a step). Any other object goes through getattr/setattr. */
typedef struct {
    PyObject *name;
    Py_ssize_t offset; /* 0: not a slot, use getattr/setattr */
} Field;

static PyTypeObject *cls_segment, *cls_state, *cls_account, *cls_charged;
static Field f_seg_acct, f_seg_t0, f_seg_clock_ns, f_seg_clock_at_ns, f_state_last_end_ns,
    f_state_streak_start_ns, f_state_busy_ns, f_state_free_steps, f_acct_clock_starts,
    f_acct_loop_ns,
    f_acct_steps, f_acct_charged_ns, f_acct_depth, f_acct_cpu_ns, f_charged_ns;

static int
find_field(Field *field, PyTypeObject *cls, PyObject *name)
{
    field->name = name;
    field->offset = 0;
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, name);
    if (descr == NULL) {
        return -1;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY)) {
            field->offset = member->offset;
        }
    }
    Py_DECREF(descr);
    return 0;
}

static inline long long
field_get(PyObject *obj, const Field *field, int fast)
{
    if (fast && field->offset) {
        PyObject *value = *(PyObject **)((char *)obj + field->offset);
        if (value != NULL && PyLong_CheckExact(value)) {
            long long n = PyLong_AsLongLong(value);
            if (n != -1 || !PyErr_Occurred()) {
                return n;
            }
            PyErr_Clear();
        }
    }
    return get_ll(obj, field->name);
}

static inline void
field_set_obj(PyObject *obj, const Field *field, int fast, PyObject *value)
{
    if (fast && field->offset) {
        PyObject **slot = (PyObject **)((char *)obj + field->offset);
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_XDECREF(old);
        return;
    }
    set_obj(obj, field->name, value);
}

static inline void
field_set(PyObject *obj, const Field *field, int fast, long long n)
{
    PyObject *value = PyLong_FromLongLong(n);
    if (value == NULL) {
        PyErr_Clear();
        return;
    }
    field_set_obj(obj, field, fast, value);
    Py_DECREF(value);
}

static inline void
field_add(PyObject *obj, const Field *field, int fast, long long n)
{
    field_set(obj, field, fast, field_get(obj, field, fast) + n);
}

static inline int
is_a(PyObject *obj, PyTypeObject *cls)
{
    return cls != NULL && PyObject_TypeCheck(obj, cls);
}

/* ``spent`` ns of this thread's CPU to ``acct``: the process's charged counter, the
 * account's charged CPU, and its own CPU too when it is in no wait span (``own``: the
 * caller already knows it is, or asks here with -1) */
static void
charge(PyObject *acct, int fa, long long spent, int own)
{
    field_add(cfg_charged, &f_charged_ns, is_a(cfg_charged, cls_charged), spent);
    field_add(acct, &f_acct_charged_ns, fa, spent);
    if (own < 0) {
        own = field_get(acct, &f_acct_depth, fa) == 0;
    }
    if (own) {
        field_add(acct, &f_acct_cpu_ns, fa, spent);
    }
}

/* This thread's segment (PER_THREAD.seg), a new reference. Cached per thread: the
 * segment lives in the thread's threading.local, as long as the thread state whose id
 * is cached with it (nothing replaces a thread's segment), so the cached pointer is
 * valid while that id is current. */
static __thread PyObject *tls_seg;
static __thread uint64_t tls_seg_tstate;

static PyObject *
thread_segment(void)
{
    PyThreadState *tstate = PyThreadState_Get();
    uint64_t id = tstate->id + 1; /* 0: nothing cached */
    if (tls_seg != NULL && tls_seg_tstate == id) {
        return Py_NewRef(tls_seg);
    }
    PyObject *seg = PyObject_GetAttr(cfg_per_thread, s_seg);
    if (seg == NULL) {
        return NULL;
    }
    tls_seg = seg; /* borrowed: the thread's local holds it */
    tls_seg_tstate = id;
    return seg;
}

typedef struct {
    PyObject_HEAD
    PyObject *coro;
    PyObject *state;
    long long created_ns;
    PyObject *busy_at_create_ns;
    char claimed;
} TimedCoroutine;

static PyTypeObject TimedCoroutineType;

static int
TC_init(TimedCoroutine *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"coro", "state", NULL};
    PyObject *coro, *state;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:TimedCoroutine", kwlist, &coro, &state)) {
        return -1;
    }
    PyObject *busy = PyObject_GetAttr(state, s_busy_ns);
    if (busy == NULL) {
        return -1;
    }
    Py_INCREF(coro);
    Py_XSETREF(self->coro, coro);
    Py_INCREF(state);
    Py_XSETREF(self->state, state);
    Py_XSETREF(self->busy_at_create_ns, busy);
    /* when the server handed us the request: queueing before the first step counts too */
    self->created_ns = clock_ns(CLOCK_REALTIME);
    self->claimed = 0;
    return 0;
}

static int
TC_traverse(TimedCoroutine *self, visitproc visit, void *arg)
{
    Py_VISIT(self->coro);
    Py_VISIT(self->state);
    return 0;
}

static int
TC_clear(TimedCoroutine *self)
{
    Py_CLEAR(self->coro);
    Py_CLEAR(self->state);
    Py_CLEAR(self->busy_at_create_ns);
    return 0;
}

/* Charge the step that just ended (steps._end_step, the same steps). */
static void
end_step(PyObject *seg, int fseg, PyObject *charged, long long wall, long long end,
         PyObject *acct, long long t0)
{
    long long spent;
    int fa = is_a(charged, cls_account);
    if (wall < cfg_short_ns && charged == acct && field_get(seg, &f_seg_t0, fseg) == t0) {
        spent = wall;
        field_set(seg, &f_seg_clock_ns, fseg, t0 + wall);
        field_set(seg, &f_seg_clock_at_ns, fseg, end);
    }
    else {
        long long now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        field_set(seg, &f_seg_clock_ns, fseg, now);
        field_set(seg, &f_seg_clock_at_ns, fseg, clock_ns(CLOCK_MONOTONIC));
        spent = now - field_get(seg, &f_seg_t0, fseg);
        if (spent < 0) {
            spent = 0;
        }
    }
    field_add(charged, &f_acct_loop_ns, fa, wall);
    field_add(charged, &f_acct_steps, fa, 1);
    charge(charged, fa, spent, -1);
    field_set_obj(seg, &f_seg_acct, fseg, Py_None);
}

/* One step: `call` runs the coroutine (send or throw) and returns its PySendResult.
 * The bookkeeping around it never raises: its errors are cleared (the app's step runs
 * whatever happens to ours), and the coroutine's own exception is kept across it. */
typedef PySendResult (*stepfunc)(TimedCoroutine *, PyObject *, PyObject **);

static PySendResult
timed_step(TimedCoroutine *self, PyObject *arg, PyObject **presult, stepfunc call,
           int start_from_burst)
{
    PyObject *seg = thread_segment();
    if (seg == NULL) { /* no segment: run the step untimed */
        PyErr_Clear();
        return call(self, arg, presult);
    }
    int fseg = is_a(seg, cls_segment);
    PyObject *acct = NULL;
    if (PyContextVar_Get(cfg_current, Py_None, &acct) < 0 || acct == NULL) {
        PyErr_Clear();
        acct = Py_NewRef(Py_None);
    }
    field_set_obj(seg, &f_seg_acct, fseg, acct);
    PyObject *state = self->state;
    int fstate = is_a(state, cls_state);
    long long w0 = clock_ns(CLOCK_MONOTONIC);
    if (w0 - field_get(state, &f_state_last_end_ns, fstate) > cfg_streak_gap_ns) {
        field_set(state, &f_state_streak_start_ns, fstate, w0);
    }
    long long t0 = 0;
    if (acct != Py_None) {
        long long gap = w0 - field_get(seg, &f_seg_clock_at_ns, fseg);
        if (start_from_burst && gap < cfg_burst_ns) {
            t0 = field_get(seg, &f_seg_clock_ns, fseg) + gap;
        }
        else {
            t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            if (start_from_burst) {
                field_add(acct, &f_acct_clock_starts, is_a(acct, cls_account), 1);
            }
        }
        field_set(seg, &f_seg_t0, fseg, t0);
    }
    else if (!start_from_burst) {
        t0 = field_get(seg, &f_seg_t0, fseg); /* throw(): as the Python version reads it */
    }
    PySendResult status = call(self, arg, presult);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    long long end = clock_ns(CLOCK_MONOTONIC);
    field_set(state, &f_state_last_end_ns, fstate, end);
    long long wall = end - w0;
    field_add(state, &f_state_busy_ns, fstate, wall);
    PyObject *charged;
    if (fseg && f_seg_acct.offset) {
        charged = *(PyObject **)((char *)seg + f_seg_acct.offset);
        Py_XINCREF(charged);
    }
    else {
        charged = PyObject_GetAttr(seg, s_acct);
        if (charged == NULL) {
            PyErr_Clear();
        }
    }
    if (charged != NULL) {
        if (charged != Py_None) {
            end_step(seg, fseg, charged, wall, end, acct, t0);
        }
        else { /* our wrapping of a step no request is charged: LoopState.free_steps */
            field_add(state, &f_state_free_steps, fstate, 1);
        }
        Py_DECREF(charged);
    }
    PyErr_Restore(type, value, tb);
    Py_DECREF(acct);
    Py_DECREF(seg);
    return status;
}

static PySendResult
call_send(TimedCoroutine *self, PyObject *arg, PyObject **presult)
{
    return PyIter_Send(self->coro, arg, presult);
}

/* A StopIteration just raised (by a measured step's Python) as PYGEN_RETURN. */
static PySendResult
result_of_call(PyObject *result, PyObject **presult)
{
    if (result != NULL) {
        *presult = result;
        return PYGEN_NEXT;
    }
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
        *presult = NULL;
        return PYGEN_ERROR;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *returned = value != NULL ? ((PyStopIterationObject *)value)->value : Py_None;
    *presult = Py_NewRef(returned != NULL ? returned : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return PYGEN_RETURN;
}

static PySendResult
TC_send_impl(TimedCoroutine *self, PyObject *arg, PyObject **presult, int measured)
{
    if (!measured && cfg_globals != NULL) {
        PyObject *due = PyDict_GetItemWithError(cfg_globals, s_step_due); /* borrowed */
        if (due != NULL) {
            PyObject *answer = PyObject_CallNoArgs(due);
            int yes = answer != NULL ? PyObject_IsTrue(answer) : -1;
            Py_XDECREF(answer);
            if (yes > 0) {
                return result_of_call(PyObject_CallFunctionObjArgs(cfg_measured, (PyObject *)self,
                                                                   arg, NULL),
                                      presult);
            }
        }
        PyErr_Clear();
    }
    return timed_step(self, arg, presult, call_send, 1);
}

static PySendResult
TC_am_send(PyObject *self, PyObject *arg, PyObject **presult)
{
    return TC_send_impl((TimedCoroutine *)self, arg, presult, 0);
}

/* a PySendResult as a Python call's answer: the value, or StopIteration(value) raised */
static PyObject *
as_call_result(PySendResult status, PyObject *result)
{
    if (status == PYGEN_NEXT) {
        return result;
    }
    if (status == PYGEN_RETURN) {
        if (result == Py_None) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        else {
            PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (exc != NULL) {
                PyErr_SetObject(PyExc_StopIteration, exc);
                Py_DECREF(exc);
            }
        }
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *
TC_send(TimedCoroutine *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "send(value=None, measured=False)");
        return NULL;
    }
    PyObject *arg = nargs > 0 ? args[0] : Py_None;
    int measured = nargs > 1 ? PyObject_IsTrue(args[1]) : 0;
    if (measured < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    PySendResult status = TC_send_impl(self, arg, &result, measured);
    return as_call_result(status, result);
}

static PyObject *
TC_iternext(TimedCoroutine *self)
{
    PyObject *result = NULL;
    PySendResult status = TC_send_impl(self, Py_None, &result, 0);
    if (status == PYGEN_RETURN) {
        if (result == Py_None) {
            Py_DECREF(result);
            return NULL; /* StopIteration with no value: no exception needed */
        }
        return as_call_result(status, result);
    }
    return status == PYGEN_NEXT ? result : NULL;
}

static PySendResult
call_throw(TimedCoroutine *self, PyObject *args, PyObject **presult)
{
    PyObject *method = PyObject_GetAttr(self->coro, s_throw);
    if (method == NULL) {
        *presult = NULL;
        return PYGEN_ERROR;
    }
    PyObject *result = PyObject_Call(method, args, NULL);
    Py_DECREF(method);
    return result_of_call(result, presult);
}

static PyObject *
TC_throw(TimedCoroutine *self, PyObject *args)
{
    /* throw(typ[, val[, tb]]), passed on as given (trailing Nones dropped, as steps.py) */
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    while (n > 1 && PyTuple_GET_ITEM(args, n - 1) == Py_None) {
        n--;
    }
    PyObject *passed = PyTuple_GetSlice(args, 0, n);
    if (passed == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    PySendResult status = timed_step(self, passed, &result, call_throw, 0);
    Py_DECREF(passed);
    return as_call_result(status, result);
}

static PyObject *
TC_close(TimedCoroutine *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_CallMethodNoArgs(self->coro, s_close);
}

static PyObject *
TC_self(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
TC_await(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *
TC_getattro(PyObject *self, PyObject *name)
{
    /* cr_frame, cr_code, __qualname__... of the coroutine, for asyncio's repr and
     * debuggers */
    PyObject *found = PyObject_GenericGetAttr(self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return found;
    }
    PyObject *coro = ((TimedCoroutine *)self)->coro;
    if (coro == NULL) {
        return NULL;
    }
    PyErr_Clear();
    return PyObject_GetAttr(coro, name);
}

static PyObject *
TC_get_claimed(TimedCoroutine *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->claimed);
}

static int
TC_set_claimed(TimedCoroutine *self, PyObject *value, void *Py_UNUSED(closure))
{
    int yes = value != NULL ? PyObject_IsTrue(value) : 0;
    if (yes < 0) {
        return -1;
    }
    self->claimed = (char)yes;
    return 0;
}

static PyGetSetDef TC_getset[] = {
    {"claimed", (getter)TC_get_claimed, (setter)TC_set_claimed,
     "claimed by the first request served in this task", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef TC_members[] = {
    {"_coro", T_OBJECT_EX, offsetof(TimedCoroutine, coro), 0, NULL},
    {"_state", T_OBJECT_EX, offsetof(TimedCoroutine, state), READONLY, NULL},
    {"created_ns", T_LONGLONG, offsetof(TimedCoroutine, created_ns), READONLY, NULL},
    {"busy_at_create_ns", T_OBJECT_EX, offsetof(TimedCoroutine, busy_at_create_ns), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef TC_methods[] = {
    {"send", (PyCFunction)(void (*)(void))TC_send, METH_FASTCALL,
     "send(value=None, measured=False): one timed step."},
    {"throw", (PyCFunction)TC_throw, METH_VARARGS, "throw(typ[, val[, tb]]): one timed step."},
    {"close", (PyCFunction)TC_close, METH_NOARGS, "Close the coroutine."},
    {"__await__", (PyCFunction)TC_await, METH_NOARGS, "Itself."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods TC_as_async = {
    .am_await = TC_self,
    .am_send = TC_am_send,
};

static PyTypeObject TimedCoroutineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "latency_ledger_speedups._speedups.TimedCoroutine",
    .tp_doc = "A task's coroutine, each step timed (latency_ledger.collect.steps).",
    .tp_basicsize = sizeof(TimedCoroutine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TC_init,
    .tp_dealloc = gc_dealloc,
    .tp_traverse = (traverseproc)TC_traverse,
    .tp_clear = (inquiry)TC_clear,
    .tp_as_async = &TC_as_async,
    .tp_iter = TC_self,
    .tp_iternext = (iternextfunc)TC_iternext,
    .tp_getattro = TC_getattro,
    .tp_methods = TC_methods,
    .tp_members = TC_members,
    .tp_getset = TC_getset,
};

static PyObject *
configure_steps(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *globals, *measured;
    long long streak, burst, short_ns;
    if (!PyArg_ParseTuple(args, "O!OLLL:configure_steps", &PyDict_Type, &globals, &measured,
                          &streak, &burst, &short_ns)) {
        return NULL;
    }
    Py_XSETREF(cfg_globals, Py_NewRef(globals));
    Py_XSETREF(cfg_measured, Py_NewRef(measured));
    cfg_streak_gap_ns = streak;
    cfg_burst_ns = burst;
    cfg_short_ns = short_ns;
    Py_RETURN_NONE;
}

/* ---- a light wait span's two edges ---------------------------------------------- */

/* tails.pause_and_start and tails.resume_and_end (with accounting.pause_for_wait and
 * resume_after_wait, and tails.wait_started and ended_clocks, inside them), the same
 * steps. configure_accounting() hands over what they read. */
static PyObject *cfg_activity, *cfg_running_loop;
static Field f_seg_active, f_seg_active_acct, f_seg_waiting, f_acct_loop_state;
static PyObject *s_active, *s_active_acct, *s_waiting, *s_loop_state, *s_move, *s_read_others;

static inline PyObject *
field_get_obj(PyObject *obj, const Field *field, int fast) /* borrowed, or NULL */
{
    if (fast && field->offset) {
        return *(PyObject **)((char *)obj + field->offset);
    }
    PyObject *value = PyObject_GetAttr(obj, field->name);
    if (value == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(value); /* the object still holds it */
    return value;
}

static int
activity_move(PyObject *acct, long long step)
{
    if (Py_IS_TYPE(cfg_activity, &ActivityType)) {
        return Activity_move_impl((Activity *)cfg_activity, acct, step);
    }
    PyObject *result = PyObject_CallMethod(cfg_activity, "move", "OL", acct, step);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

static long long
activity_read_others(PyObject *acct)
{
    PyObject *value = Py_IS_TYPE(cfg_activity, &ActivityType)
                          ? Activity_read_others((Activity *)cfg_activity, acct)
                          : PyObject_CallMethodOneArg(cfg_activity, s_read_others, acct);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long n = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return n;
}

/* acct's loop state when it is a LoopState and this thread runs an event loop, else NULL */
static PyObject *
loop_state_here(PyObject *acct, int fa)
{
    PyObject *state = field_get_obj(acct, &f_acct_loop_state, fa);
    if (state == NULL || cls_state == NULL || !Py_IS_TYPE(state, cls_state)) {
        return NULL;
    }
    PyObject *loop = PyObject_CallNoArgs(cfg_running_loop);
    if (loop == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(loop);
    return loop == Py_None ? NULL : state;
}


static PyObject *
pause_and_start(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || cfg_per_thread == NULL || cfg_activity == NULL) {
        PyErr_SetString(PyExc_TypeError, "pause_and_start(acct, delay_ns), once configured");
        return NULL;
    }
    PyObject *acct = args[0];
    long long delay = PyLong_AsLongLong(args[1]);
    if (delay == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int fa = is_a(acct, cls_account);
    PyObject *seg = thread_segment();
    if (seg == NULL) {
        return NULL;
    }
    int fseg = is_a(seg, cls_segment);
    /* accounting.pause_for_wait */
    long long thread_ns = -1;
    if (field_get_obj(seg, &f_seg_acct, fseg) == acct) {
        thread_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        long long spent = thread_ns - field_get(seg, &f_seg_t0, fseg);
        if (spent < 0) {
            spent = 0;
        }
        int own = field_get(acct, &f_acct_depth, fa) == 0;
        charge(acct, fa, spent, own);
        if (own) {
            if (field_get_obj(seg, &f_seg_active, fseg) == Py_True) {
                field_set_obj(seg, &f_seg_active, fseg, Py_False);
                PyObject *active = field_get_obj(seg, &f_seg_active_acct, fseg);
                Py_XINCREF(active);
                int failed = activity_move(active != NULL ? active : Py_None, -1);
                Py_XDECREF(active);
                if (failed) {
                    Py_DECREF(seg);
                    return NULL;
                }
                field_set_obj(seg, &f_seg_active_acct, fseg, Py_None);
                field_set_obj(seg, &f_seg_waiting, fseg, Py_True);
            }
        }
        field_set(seg, &f_seg_t0, fseg, thread_ns);
    }
    field_add(acct, &f_acct_depth, fa, 1);
    Py_DECREF(seg);
    /* tails.wait_started */
    if (delay < 0) {
        delay = read_run_delay();
    }
    long long cpu;
    PyObject *state = loop_state_here(acct, fa);
    if (state != NULL) {
        int fstate = is_a(state, cls_state);
        cpu = field_get(state, &f_state_busy_ns, fstate) - field_get(acct, &f_acct_loop_ns, fa);
    }
    else {
        long long process = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        if (thread_ns < 0) {
            thread_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        }
        cpu = process - thread_ns;
    }
    return Py_BuildValue("((LL)L)", cpu, activity_read_others(acct), delay);
}

static PyObject *
resume_and_end(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 4 || cfg_per_thread == NULL || cfg_activity == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "resume_and_end(acct, length_ns, started, delay_ns=-1), once configured");
        return NULL;
    }
    PyObject *acct = args[0];
    long long length = PyLong_AsLongLong(args[1]);
    long long delay_ns = nargs > 3 ? PyLong_AsLongLong(args[3]) : -1;
    if (PyErr_Occurred()) {
        return NULL;
    }
    int fa = is_a(acct, cls_account);
    long long thread_ns = -1, bound = 0, delay = 0;
    if (length > 0) {
        /* tails.ended_clocks */
        long long cpu0, activity0, delay0;
        if (!PyArg_ParseTuple(args[2], "(LL)L", &cpu0, &activity0, &delay0)) {
            return NULL;
        }
        long long cpu, streak = 0;
        PyObject *state = loop_state_here(acct, fa);
        if (state != NULL) {
            int fstate = is_a(state, cls_state);
            cpu = field_get(state, &f_state_busy_ns, fstate) - field_get(acct, &f_acct_loop_ns, fa);
            long long activity = activity_read_others(acct);
            streak = clock_ns(CLOCK_MONOTONIC) - field_get(state, &f_state_streak_start_ns, fstate);
            if (streak > length) {
                streak = length;
            }
            activity0 = activity - activity0;
        }
        else {
            long long process = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
            thread_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            cpu = process - thread_ns;
            activity0 = activity_read_others(acct) - activity0;
        }
        long long others = cpu - cpu0;
        if (activity0 > others) {
            others = activity0;
        }
        bound = streak > others && others * 2 >= streak ? streak : others;
        if (delay_ns < 0) {
            delay_ns = read_run_delay();
        }
        delay = delay0 >= 0 ? delay_ns - delay0 : 0;
    }
    /* accounting.resume_after_wait */
    PyObject *seg = thread_segment();
    if (seg == NULL) {
        return NULL;
    }
    int fseg = is_a(seg, cls_segment);
    if (field_get_obj(seg, &f_seg_acct, fseg) == acct) {
        if (thread_ns < 0) {
            thread_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        }
        long long spent = thread_ns - field_get(seg, &f_seg_t0, fseg);
        if (spent < 0) {
            spent = 0;
        }
        charge(acct, fa, spent, 0); /* the wait's own CPU (driver code) is a request's too */
        field_set(seg, &f_seg_t0, fseg, thread_ns);
    }
    long long depth = field_get(acct, &f_acct_depth, fa);
    if (depth > 0) {
        field_set(acct, &f_acct_depth, fa, --depth);
    }
    if (field_get_obj(seg, &f_seg_waiting, fseg) == Py_True && depth == 0) {
        field_set_obj(seg, &f_seg_waiting, fseg, Py_False);
        if (field_get_obj(seg, &f_seg_active, fseg) != Py_True) {
            field_set_obj(seg, &f_seg_active, fseg, Py_True);
            PyObject *active = field_get_obj(seg, &f_seg_acct, fseg);
            if (active == NULL) {
                active = Py_None;
            }
            Py_INCREF(active);
            field_set_obj(seg, &f_seg_active_acct, fseg, active);
            int failed = activity_move(active, 1);
            Py_DECREF(active);
            if (failed) {
                Py_DECREF(seg);
                return NULL;
            }
        }
    }
    Py_DECREF(seg);
    if (length <= 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(LL)", bound, delay);
}

/* ---- ThreadCall -------------------------------------------------------------------- */

/* hooks._ThreadCall, the same steps: a callable run in a worker thread with its CPU
 * charged to the submitting request's account. hooks.py's globals hold THREAD_CALLS
 * (its meter, looked up at each call as the Python version does). */
static Field f_acct_thread_wrapper, f_acct_overhead_ns;
static PyObject *s_thread_wrapper, *s_overhead_ns, *s_thread_calls, *s_due, *s_record,
    *s_mean_ns;
static PyObject *cfg_hooks_globals;

typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *acct;
    vectorcallfunc vectorcall;
} ThreadCall;

static PyObject *
ThreadCall_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *func, *acct;
    static char *kwlist[] = {"func", "acct", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:ThreadCall", kwlist, &func, &acct)) {
        return NULL;
    }
    ThreadCall *self = (ThreadCall *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->func = Py_NewRef(func);
    self->acct = Py_NewRef(acct);
    self->vectorcall = NULL; /* set below, once the function is defined */
    return (PyObject *)self;
}

static int
ThreadCall_traverse(ThreadCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->acct);
    return 0;
}

static int
ThreadCall_clear(ThreadCall *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->acct);
    return 0;
}

static PyObject *
ThreadCall_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ThreadCall *self = (ThreadCall *)callable;
    /* our CPU around the call is the collector's cost (1 in N measured, selfcost.py) */
    PyObject *meter = cfg_hooks_globals != NULL
                          ? PyDict_GetItemWithError(cfg_hooks_globals, s_thread_calls)
                          : NULL; /* borrowed */
    int sampled = 0;
    if (meter != NULL) {
        Py_INCREF(meter);
        PyObject *answer = PyObject_CallMethodNoArgs(meter, s_due);
        sampled = answer != NULL ? PyObject_IsTrue(answer) : 0;
        Py_XDECREF(answer);
        if (sampled < 0) {
            sampled = 0;
        }
    }
    PyErr_Clear();
    long long c0 = sampled ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    PyObject *seg = thread_segment();
    if (seg == NULL) {
        PyErr_Clear();
        Py_XDECREF(meter);
        return PyObject_Vectorcall(self->func, args, nargsf, kwnames);
    }
    int fseg = is_a(seg, cls_segment);
    PyObject *mine = self->acct;
    int fm = is_a(mine, cls_account);
    PyObject *outer = field_get_obj(seg, &f_seg_acct, fseg);
    outer = outer != NULL ? outer : Py_None;
    Py_INCREF(outer);
    long long outer_t0 = field_get(seg, &f_seg_t0, fseg);
    field_set_obj(seg, &f_seg_acct, fseg, mine);
    int was_active = field_get_obj(seg, &f_seg_active, fseg) == Py_True;
    if (!was_active) { /* enter_python, inline */
        field_set_obj(seg, &f_seg_active, fseg, Py_True);
        field_set_obj(seg, &f_seg_active_acct, fseg, mine);
        if (activity_move(mine, 1) < 0) {
            PyErr_Clear();
        }
    }
    long long c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    field_set(seg, &f_seg_t0, fseg, c1);
    PyObject *wrapper = field_get_obj(mine, &f_acct_thread_wrapper, fm);
    PyObject *result;
    if (wrapper != NULL && wrapper != Py_None) {
        /* wrapper(func, *args, **kwargs) */
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
        Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
        PyObject **with_func = PyMem_Malloc((total + 2) * sizeof(PyObject *));
        if (with_func == NULL) {
            result = PyErr_NoMemory();
        }
        else {
            with_func[0] = NULL; /* room for PY_VECTORCALL_ARGUMENTS_OFFSET */
            with_func[1] = self->func;
            for (Py_ssize_t i = 0; i < total; i++) {
                with_func[i + 2] = args[i];
            }
            Py_INCREF(wrapper);
            result = PyObject_Vectorcall(wrapper, with_func + 1,
                                         (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
            Py_DECREF(wrapper);
            PyMem_Free(with_func);
        }
    }
    else {
        result = PyObject_Vectorcall(self->func, args, nargsf, kwnames);
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    long long now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (!was_active) { /* leave_python, inline */
        field_set_obj(seg, &f_seg_waiting, fseg, Py_False);
        if (field_get_obj(seg, &f_seg_active, fseg) == Py_True) {
            field_set_obj(seg, &f_seg_active, fseg, Py_False);
            PyObject *active = field_get_obj(seg, &f_seg_active_acct, fseg);
            active = active != NULL ? active : Py_None;
            Py_INCREF(active);
            if (activity_move(active, -1) < 0) {
                PyErr_Clear();
            }
            Py_DECREF(active);
            field_set_obj(seg, &f_seg_active_acct, fseg, Py_None);
        }
    }
    PyObject *acct = field_get_obj(seg, &f_seg_acct, fseg);
    if (acct != NULL && acct != Py_None) {
        int fa = is_a(acct, cls_account);
        charge(acct, fa, now - field_get(seg, &f_seg_t0, fseg), -1);
    }
    /* a nested call (from_thread back into a worker) resumes the outer segment */
    field_set_obj(seg, &f_seg_acct, fseg, outer);
    field_set(seg, &f_seg_t0, fseg, outer != Py_None ? now : outer_t0);
    Py_DECREF(outer);
    Py_DECREF(seg);
    if (meter != NULL) {
        if (sampled) {
            long long ns = c1 - c0 + clock_ns(CLOCK_THREAD_CPUTIME_ID) - now;
            PyObject *r = PyObject_CallMethod(meter, "record", "L", ns);
            Py_XDECREF(r);
        }
        long long mean = get_ll(meter, s_mean_ns);
        field_add(mine, &f_acct_overhead_ns, fm, mean);
        Py_DECREF(meter);
    }
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return result;
}

static PyObject *
ThreadCall_new_vc(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ThreadCall *self = (ThreadCall *)ThreadCall_new(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = ThreadCall_vectorcall;
    }
    return (PyObject *)self;
}

static PyMemberDef ThreadCall_members[] = {
    {"_func", T_OBJECT_EX, offsetof(ThreadCall, func), READONLY, NULL},
    {"_acct", T_OBJECT_EX, offsetof(ThreadCall, acct), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ThreadCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "latency_ledger_speedups._speedups.ThreadCall",
    .tp_doc = "A callable run in a worker thread, its CPU charged to a request (hooks._ThreadCall).",
    .tp_basicsize = sizeof(ThreadCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = ThreadCall_new_vc,
    .tp_dealloc = gc_dealloc,
    .tp_traverse = (traverseproc)ThreadCall_traverse,
    .tp_clear = (inquiry)ThreadCall_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(ThreadCall, vectorcall),
    .tp_members = ThreadCall_members,
};

static PyObject *
configure_hooks(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *globals;
    if (!PyArg_ParseTuple(args, "O!:configure_hooks", &PyDict_Type, &globals)) {
        return NULL;
    }
    if (cls_account == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_accounting first");
        return NULL;
    }
    if (find_field(&f_acct_thread_wrapper, cls_account, s_thread_wrapper) < 0 ||
        find_field(&f_acct_overhead_ns, cls_account, s_overhead_ns) < 0) {
        return NULL;
    }
    Py_XSETREF(cfg_hooks_globals, Py_NewRef(globals));
    Py_RETURN_NONE;
}

static PyObject *
configure_accounting(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *per_thread, *current, *charged, *activity, *running_loop;
    PyTypeObject *segment, *state, *account, *charged_cls;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!O!O!:configure_accounting", &per_thread, &current,
                          &charged, &activity, &running_loop, &PyType_Type, &segment,
                          &PyType_Type, &state, &PyType_Type, &account, &PyType_Type,
                          &charged_cls)) {
        return NULL;
    }
    if (!PyContextVar_CheckExact(current)) {
        PyErr_SetString(PyExc_TypeError, "current must be a ContextVar");
        return NULL;
    }
    if (find_field(&f_seg_acct, segment, s_acct) < 0 || find_field(&f_seg_t0, segment, s_t0) < 0 ||
        find_field(&f_seg_clock_ns, segment, s_clock_ns) < 0 ||
        find_field(&f_seg_clock_at_ns, segment, s_clock_at_ns) < 0 ||
        find_field(&f_seg_active, segment, s_active) < 0 ||
        find_field(&f_seg_active_acct, segment, s_active_acct) < 0 ||
        find_field(&f_seg_waiting, segment, s_waiting) < 0 ||
        find_field(&f_state_last_end_ns, state, s_last_end_ns) < 0 ||
        find_field(&f_state_streak_start_ns, state, s_streak_start_ns) < 0 ||
        find_field(&f_state_busy_ns, state, s_busy_ns) < 0 ||
        find_field(&f_state_free_steps, state, s_free_steps) < 0 ||
        find_field(&f_acct_clock_starts, account, s_clock_starts) < 0 ||
        find_field(&f_acct_loop_ns, account, s_loop_ns) < 0 ||
        find_field(&f_acct_steps, account, s_steps) < 0 ||
        find_field(&f_acct_charged_ns, account, s_charged_ns) < 0 ||
        find_field(&f_acct_depth, account, s_depth) < 0 ||
        find_field(&f_acct_cpu_ns, account, s_cpu_ns) < 0 ||
        find_field(&f_acct_loop_state, account, s_loop_state) < 0 ||
        find_field(&f_charged_ns, charged_cls, s_ns) < 0) {
        return NULL;
    }
    Py_XSETREF(cls_segment, (PyTypeObject *)Py_NewRef(segment));
    Py_XSETREF(cls_state, (PyTypeObject *)Py_NewRef(state));
    Py_XSETREF(cls_account, (PyTypeObject *)Py_NewRef(account));
    Py_XSETREF(cls_charged, (PyTypeObject *)Py_NewRef(charged_cls));
    Py_XSETREF(cfg_per_thread, Py_NewRef(per_thread));
    Py_XSETREF(cfg_current, Py_NewRef(current));
    Py_XSETREF(cfg_charged, Py_NewRef(charged));
    Py_XSETREF(cfg_activity, Py_NewRef(activity));
    Py_XSETREF(cfg_running_loop, Py_NewRef(running_loop));
    tls_seg = NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"run_delay_ns", run_delay_ns, METH_NOARGS,
     "How long this thread has waited for a CPU, in ns (/proc/thread-self/schedstat)."},
    {"configure_accounting", configure_accounting, METH_VARARGS,
     "configure_accounting(per_thread, current, charged, activity, get_running_loop, "
     "Segment, LoopState, Account, Charged): what the step timer and the wait edges read."},
    {"configure_hooks", configure_hooks, METH_VARARGS,
     "configure_hooks(globals): hooks.py's globals (THREAD_CALLS), for ThreadCall."},
    {"configure_steps", configure_steps, METH_VARARGS,
     "configure_steps(globals, measured_step, streak_gap_ns, burst_ns, short_ns)."},
    {"pause_and_start", (PyCFunction)(void (*)(void))pause_and_start, METH_FASTCALL,
     "tails.pause_and_start(acct, delay_ns), compiled."},
    {"resume_and_end", (PyCFunction)(void (*)(void))resume_and_end, METH_FASTCALL,
     "tails.resume_and_end(acct, length_ns, started, delay_ns=-1), compiled."},
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
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_seg, "seg"}, {&s_acct, "acct"}, {&s_t0, "t0"}, {&s_clock_ns, "clock_ns"},
        {&s_clock_at_ns, "clock_at_ns"}, {&s_last_end_ns, "last_end_ns"},
        {&s_streak_start_ns, "streak_start_ns"}, {&s_busy_ns, "busy_ns"},
        {&s_clock_starts, "clock_starts"}, {&s_loop_ns, "loop_ns"}, {&s_steps, "steps"},
        {&s_charged_ns, "charged_ns"}, {&s_depth, "depth"}, {&s_cpu_ns, "cpu_ns"},
        {&s_ns, "ns"}, {&s_step_due, "_STEP_DUE"}, {&s_throw, "throw"}, {&s_close, "close"},
        {&s_active, "active"}, {&s_active_acct, "active_acct"}, {&s_waiting, "waiting"},
        {&s_loop_state, "loop_state"}, {&s_move, "move"}, {&s_read_others, "read_others"},
        {&s_thread_wrapper, "thread_wrapper"}, {&s_overhead_ns, "overhead_ns"},
        {&s_thread_calls, "THREAD_CALLS"}, {&s_due, "due"}, {&s_record, "record"},
        {&s_mean_ns, "mean_ns"}, {&s_free_steps, "free_steps"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) {
            return NULL;
        }
    }
    if (str_solo_ns == NULL || PyType_Ready(&ActivityType) < 0 ||
        PyType_Ready(&TimedCoroutineType) < 0 || PyType_Ready(&ThreadCallType) < 0) {
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
    Py_INCREF(&ThreadCallType);
    if (PyModule_AddObject(module, "ThreadCall", (PyObject *)&ThreadCallType) < 0) {
        Py_DECREF(&ThreadCallType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&TimedCoroutineType);
    if (PyModule_AddObject(module, "TimedCoroutine", (PyObject *)&TimedCoroutineType) < 0) {
        Py_DECREF(&TimedCoroutineType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
