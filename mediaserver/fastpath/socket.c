/* The shared UDP socket, drained in batches (recvmmsg; what the C path sends
 * goes out with one sendmmsg per batch), and the timer of the batch window. */
#include "fastpath.h"

/* the key UdpMux.route_fast files a peer under: packed address + port */
static PyObject *address_key(const struct sockaddr_storage *ss) {
    unsigned char key[18];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        memcpy(key, &a->sin_addr, 4);
        memcpy(key + 4, &a->sin_port, 2);
        return PyBytes_FromStringAndSize((const char *)key, 6);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        memcpy(key, &a->sin6_addr, 16);
        memcpy(key + 16, &a->sin6_port, 2);
        return PyBytes_FromStringAndSize((const char *)key, 18);
    }
    return PyBytes_FromStringAndSize("", 0);
}

/* the address as Python's socket.recvfrom gives it */
static PyObject *address_tuple(const struct sockaddr_storage *ss) {
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port),
                             ntohl(a->sin6_flowinfo), a->sin6_scope_id);
    }
    return Py_BuildValue("(si)", "", 0);
}

/* One drain's incoming datagrams, read with recvmmsg, each with the kernel's
 * receive time (SO_TIMESTAMPNS) for the SFU-added latency. */
#define RECV_BATCH 32
static struct {
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage from[RECV_BATCH];
    char control[RECV_BATCH][CMSG_SPACE(sizeof(struct timespec))];
    unsigned char data[RECV_BATCH][RECV_SIZE];
} in;

static int received_at(struct msghdr *m, struct timespec *when) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            memcpy(when, CMSG_DATA(c), sizeof *when);
            return 1;
        }
    }
    return 0;
}

/* one datagram: to its peer's C path, or back to Python */
static void dispatch(unsigned char *buffer, ssize_t n, struct sockaddr_storage *from,
                     PyObject *routes, PyObject *fallback, PyObject *on_error) {
    PyObject *peer = NULL;
    if (n <= MAX_DATAGRAM && buffer[0] > 127 && buffer[0] < 192) {
        PyObject *key = address_key(from);
        if (key != NULL) {
            peer = PyDict_GetItemWithError(routes, key);
            Py_DECREF(key);
        }
        if (PyErr_Occurred()) {
            report_error(NULL, on_error);
            return;
        }
        if (peer != NULL && !PyObject_TypeCheck(peer, &PeerCoreType))
            peer = NULL;
    }
    if (peer != NULL) {
        Py_INCREF(peer);
        if (peer_handle((PeerCore *)peer, buffer, n) < 0)
            report_error((PeerCore *)peer, on_error);
        Py_DECREF(peer);
        return;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)buffer, n);
    PyObject *addr = data == NULL ? NULL : address_tuple(from);
    PyObject *r =
        addr == NULL ? NULL : PyObject_CallFunctionObjArgs(fallback, data, addr, NULL);
    Py_XDECREF(data);
    Py_XDECREF(addr);
    if (r == NULL)
        report_error(NULL, on_error);
    Py_XDECREF(r);
}

PyObject *fastpath_drain(PyObject *module, PyObject *args) {
    int fd;
    PyObject *routes, *fallback, *on_error, *on_latency;
    if (!PyArg_ParseTuple(args, "iO!OOO", &fd, &PyDict_Type, &routes, &fallback,
                          &on_error, &on_latency))
        return NULL;
    long handled = 0;
    static double last_sampled = 0;
    batch_sends(1);
    for (int round = 0; round < DRAIN_BATCH / RECV_BATCH; round++) {
        for (int i = 0; i < RECV_BATCH; i++) {
            in.iov[i].iov_base = in.data[i];
            in.iov[i].iov_len = RECV_SIZE;
            struct msghdr *m = &in.msgs[i].msg_hdr;
            m->msg_name = &in.from[i];
            m->msg_namelen = sizeof in.from[i];
            m->msg_iov = &in.iov[i];
            m->msg_iovlen = 1;
            m->msg_control = in.control[i];
            m->msg_controllen = sizeof in.control[i];
            m->msg_flags = 0;
        }
        int n = recvmmsg(fd, in.msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* EAGAIN: drained; or an ICMP error reported on the socket */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            continue;
        }
        struct timespec kernel[RECV_BATCH];
        int timed[RECV_BATCH];
        for (int i = 0; i < n; i++) {
            timed[i] = 0;
            if (received_at(&in.msgs[i].msg_hdr, &kernel[i])) {
                double at = (double)kernel[i].tv_sec + (double)kernel[i].tv_nsec * 1e-9;
                timed[i] = at - last_sampled >= SAMPLE_INTERVAL;
                if (timed[i])
                    last_sampled = at;
            }
            if (in.msgs[i].msg_len == 0)
                continue;
            handled++;
            dispatch(in.data[i], in.msgs[i].msg_len, &in.from[i], routes, fallback,
                     on_error);
        }
        if (flush_sends() < 0)
            report_error(NULL, on_error);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        for (int i = 0; i < n; i++) {
            if (!timed[i])
                continue;
            double latency = (double)(now.tv_sec - kernel[i].tv_sec) +
                             (double)(now.tv_nsec - kernel[i].tv_nsec) * 1e-9;
            PyObject *seconds = PyFloat_FromDouble(latency);
            PyObject *r = seconds == NULL ? NULL : PyObject_CallOneArg(on_latency, seconds);
            Py_XDECREF(seconds);
            if (r == NULL)
                report_error(NULL, on_error);
            Py_XDECREF(r);
        }
        if (n < RECV_BATCH)
            break;
    }
    batch_sends(0);
    if (flush_counts() < 0)
        report_error(NULL, on_error);
    return PyLong_FromLong(handled);
}

/* A timer with microsecond resolution for the batch window (the event loop's own
 * timers tick in milliseconds). */
PyObject *fastpath_timer(PyObject *module, PyObject *unused) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

PyObject *fastpath_arm(PyObject *module, PyObject *args) {
    int fd;
    long microseconds;
    if (!PyArg_ParseTuple(args, "il", &fd, &microseconds))
        return NULL;
    if (microseconds <= 0) {
        PyErr_SetString(PyExc_ValueError, "the timer needs a positive delay");
        return NULL;
    }
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = microseconds / 1000000;
    spec.it_value.tv_nsec = (microseconds % 1000000) * 1000;
    if (timerfd_settime(fd, 0, &spec, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyObject *fastpath_expired(PyObject *module, PyObject *arg) {
    int fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    uint64_t count = 0;
    if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(count > 0);
}
