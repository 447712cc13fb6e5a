/* The extension module mediaserver._fastpath: its functions, and the C types
 * that forwarder.PeerMedia, InboundStream and OutboundLeg subclass. */
#include "fastpath.h"

srtp_func srtp_protect_fn = NULL;
srtp_func srtp_unprotect_fn = NULL;

PyObject *s_packets_in, *s_bytes_in, *s_packets_out, *s_bytes_out, *s_forwarded,
    *s_drop, *s_srtp, *s_malformed, *s_lobby, *s_awaiting_keyframe,
    *s_unknown_payload_type, *s_srtp_protect, *s_send_failed, *s_handle_datagram,
    *s_handle_rtp, *s_send_nack, *s_on_forward_time, *s_keyframes, *s_h264, *s_error,
    *s_opus_fec, *s_audio, *s_video;

/* socket.c */
PyObject *fastpath_drain(PyObject *module, PyObject *args);
PyObject *fastpath_timer(PyObject *module, PyObject *unused);
PyObject *fastpath_arm(PyObject *module, PyObject *args);
PyObject *fastpath_expired(PyObject *module, PyObject *arg);

static PyObject *fastpath_init(PyObject *module, PyObject *args) {
    unsigned long long protect, unprotect;
    if (!PyArg_ParseTuple(args, "KK", &protect, &unprotect))
        return NULL;
    srtp_protect_fn = (srtp_func)(uintptr_t)protect;
    srtp_unprotect_fn = (srtp_func)(uintptr_t)unprotect;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- PeerCore */

static PyObject *peer_attach(PeerCore *self, PyObject *args) {
    unsigned long long rx, tx;
    PyObject *owner;
    int fd, port;
    const char *host;
    if (!PyArg_ParseTuple(args, "KKOisi", &rx, &tx, &owner, &fd, &host, &port))
        return NULL;
    if (srtp_protect_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "fast path not initialised");
        return NULL;
    }
    struct sockaddr_storage remote;
    memset(&remote, 0, sizeof remote);
    socklen_t remote_len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&remote;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&remote;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        remote_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        remote_len = sizeof *v6;
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
        return NULL;
    }
    Py_INCREF(owner);
    Py_XSETREF(self->srtp_owner, owner);
    self->rx = (void *)(uintptr_t)rx;
    self->tx = (void *)(uintptr_t)tx;
    self->fd = fd;
    self->remote = remote;
    self->remote_len = remote_len;
    Py_RETURN_NONE;
}

static PyObject *peer_detach(PeerCore *self, PyObject *unused) {
    self->rx = self->tx = NULL;
    self->fd = -1;
    Py_CLEAR(self->srtp_owner);
    Py_RETURN_NONE;
}

static PyObject *peer_fast_handle(PeerCore *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len > MAX_DATAGRAM || view.len < 1) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "datagram size out of range");
        return NULL;
    }
    unsigned char buffer[BUFFER_SIZE];
    memcpy(buffer, view.buf, view.len);
    Py_ssize_t length = view.len;
    PyBuffer_Release(&view);
    /* on an error the counts wait for the next call */
    if (peer_handle(self, buffer, length) < 0 || flush_counts() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *peer_set_extensions(PeerCore *self, PyObject *args) {
    int transport_cc, abs_send_time, sent_transport_cc = 0;
    if (!PyArg_ParseTuple(args, "ii|i", &transport_cc, &abs_send_time, &sent_transport_cc))
        return NULL;
    /* ours go in a one-byte header */
    if (transport_cc < 0 || transport_cc > 255 || abs_send_time < 0 ||
        abs_send_time > 14 || sent_transport_cc < 0 || sent_transport_cc > 14) {
        PyErr_SetString(PyExc_ValueError, "header extension id out of range");
        return NULL;
    }
    if (abs_send_time && sent_transport_cc) {
        PyErr_SetString(PyExc_ValueError,
                        "abs-send-time or transport-cc on what we send, not both");
        return NULL;
    }
    if (sent_transport_cc && self->sent == NULL) {
        self->sent = PyMem_Malloc(sizeof(SentLog));
        if (self->sent == NULL)
            return PyErr_NoMemory();
        self->sent->next = 1;
        for (int i = 0; i < SENT_RING; i++)
            self->sent->seq[i] = -1;
    } else if (!sent_transport_cc && self->sent != NULL) {
        PyMem_Free(self->sent);
        self->sent = NULL;
    }
    self->sent_transport_cc_id = sent_transport_cc;
    if (transport_cc && self->twcc == NULL) {
        self->twcc = PyMem_Calloc(1, sizeof(TransportCc));
        if (self->twcc == NULL)
            return PyErr_NoMemory();
        self->twcc->max = -1;
    } else if (!transport_cc && self->twcc != NULL) {
        PyMem_Free(self->twcc);
        self->twcc = NULL;
    }
    self->transport_cc_id = transport_cc;
    self->abs_send_time_id = abs_send_time;
    Py_RETURN_NONE;
}

static PyObject *peer_record_transport_cc(PeerCore *self, PyObject *args) {
    Py_buffer view;
    double now;
    if (!PyArg_ParseTuple(args, "y*d", &view, &now))
        return NULL;
    RtpHeader h;
    if (self->twcc != NULL && parse_rtp(view.buf, view.len, &h) == 0)
        twcc_record(self->twcc, self->transport_cc_id, view.buf, &h, now);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *peer_number_packet(PeerCore *self, PyObject *args) {
    double now;
    int size;
    if (!PyArg_ParseTuple(args, "di", &now, &size))
        return NULL;
    if (self->sent == NULL)
        return PyBytes_FromStringAndSize(NULL, 0);
    unsigned char block[EXTENSION_BLOCK];
    write_transport_seq(block, self->sent_transport_cc_id, self->sent, now, size);
    return PyBytes_FromStringAndSize((const char *)block, sizeof block);
}

static PyObject *peer_sent_packet(PeerCore *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    if (self->sent == NULL || seq < 0 || seq > 0xFFFF ||
        self->sent->seq[seq % SENT_RING] != seq)
        Py_RETURN_NONE;
    return Py_BuildValue("(di)", self->sent->at[seq % SENT_RING],
                         self->sent->size[seq % SENT_RING]);
}

static PyObject *peer_transport_feedback(PeerCore *self, PyObject *args) {
    unsigned int sender_ssrc, media_ssrc;
    if (!PyArg_ParseTuple(args, "II", &sender_ssrc, &media_ssrc))
        return NULL;
    if (self->twcc == NULL)
        Py_RETURN_NONE;
    return twcc_feedback(self->twcc, sender_ssrc, media_ssrc);
}

static PyObject *peer_attached(PeerCore *self, void *closure) {
    return PyBool_FromLong(self->tx != NULL);
}

static int peer_traverse(PeerCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->stats);
    Py_VISIT(self->streams);
    Py_VISIT(self->srtp_owner);
    return 0;
}

static int peer_clear(PeerCore *self) {
    Py_CLEAR(self->stats);
    Py_CLEAR(self->streams);
    Py_CLEAR(self->srtp_owner);
    self->rx = self->tx = NULL;
    PyMem_Free(self->twcc);
    self->twcc = NULL;
    PyMem_Free(self->sent);
    self->sent = NULL;
    return 0;
}

static void peer_dealloc(PeerCore *self) {
    PyObject_GC_UnTrack(self);
    peer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *peer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PeerCore *self = (PeerCore *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->fd = -1;
    return (PyObject *)self;
}

static PyMemberDef peer_members[] = {
    {"stats", T_OBJECT_EX, offsetof(PeerCore, stats), 0, NULL},
    {"streams", T_OBJECT_EX, offsetof(PeerCore, streams), 0, NULL},
    {"forwarding", T_BOOL, offsetof(PeerCore, forwarding), 0, NULL},
    {"last_packet_at", T_DOUBLE, offsetof(PeerCore, last_packet_at), 0, NULL},
    {"_timing_count", T_LONGLONG, offsetof(PeerCore, timing_count), 0, NULL},
    {"transport_cc_id", T_INT, offsetof(PeerCore, transport_cc_id), READONLY, NULL},
    {"abs_send_time_id", T_INT, offsetof(PeerCore, abs_send_time_id), READONLY, NULL},
    {"sent_transport_cc_id", T_INT, offsetof(PeerCore, sent_transport_cc_id), READONLY,
     NULL},
    {NULL}};

static PyMethodDef peer_methods[] = {
    {"attach", (PyCFunction)peer_attach, METH_VARARGS,
     "attach(rx_ctx, tx_ctx, owner, fd, host, port): SRTP contexts and route"},
    {"detach", (PyCFunction)peer_detach, METH_NOARGS, "stop sending from C"},
    {"fast_handle", (PyCFunction)peer_fast_handle, METH_O,
     "one SRTP datagram through the C path (as the socket drain does)"},
    {"_set_extensions", (PyCFunction)peer_set_extensions, METH_VARARGS,
     "_set_extensions(transport_cc_id, abs_send_time_id, sent_transport_cc_id=0): 0 "
     "for none"},
    {"number_packet", (PyCFunction)peer_number_packet, METH_VARARGS,
     "number_packet(now, size) -> the transport-cc block for a packet we send now "
     "(b'' when not negotiated), noted for sent_packet"},
    {"sent_packet", (PyCFunction)peer_sent_packet, METH_O,
     "sent_packet(seq) -> (sent at, size) of one of our numbered packets, or None"},
    {"record_transport_cc", (PyCFunction)peer_record_transport_cc, METH_VARARGS,
     "record_transport_cc(plain_rtp, now): what the C path notes of each packet"},
    {"transport_feedback", (PyCFunction)peer_transport_feedback, METH_VARARGS,
     "transport_feedback(sender_ssrc, media_ssrc) -> the next transport-cc packet "
     "or None"},
    {NULL}};

static PyGetSetDef peer_getset[] = {
    {"attached", (getter)peer_attached, NULL, "the C path can send to this peer", NULL},
    {NULL}};

PyTypeObject PeerCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver._fastpath.PeerCore",
    .tp_basicsize = sizeof(PeerCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = peer_new,
    .tp_dealloc = (destructor)peer_dealloc,
    .tp_traverse = (traverseproc)peer_traverse,
    .tp_clear = (inquiry)peer_clear,
    .tp_members = peer_members,
    .tp_methods = peer_methods,
    .tp_getset = peer_getset,
    .tp_doc = "C state of forwarder.PeerMedia",
};

/* -------------------------------------------------------- StreamCore */

static int stream_traverse(StreamCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->publisher);
    Py_VISIT(self->kind);
    Py_VISIT(self->legs);
    Py_VISIT(self->payload_types);
    return 0;
}

static int stream_clear(StreamCore *self) {
    Py_CLEAR(self->publisher);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->legs);
    Py_CLEAR(self->payload_types);
    return 0;
}

static void stream_dealloc(StreamCore *self) {
    PyObject_GC_UnTrack(self);
    stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef stream_members[] = {
    {"publisher", T_OBJECT_EX, offsetof(StreamCore, publisher), 0, NULL},
    {"kind", T_OBJECT_EX, offsetof(StreamCore, kind), 0, NULL},
    {"legs", T_OBJECT_EX, offsetof(StreamCore, legs), 0, NULL},
    {"payload_types", T_OBJECT_EX, offsetof(StreamCore, payload_types), 0, NULL},
    {"media_ssrc", T_UINT, offsetof(StreamCore, media_ssrc), 0, NULL},
    {"clock_rate", T_INT, offsetof(StreamCore, clock_rate), 0, NULL},
    {"is_video", T_BOOL, offsetof(StreamCore, is_video), 0, NULL},
    {"_max_seq", T_INT, offsetof(StreamCore, max_seq), 0, NULL},
    {"_cycles", T_LONGLONG, offsetof(StreamCore, cycles), 0, NULL},
    {"_base_seq", T_INT, offsetof(StreamCore, base_seq), 0, NULL},
    {"_received", T_LONGLONG, offsetof(StreamCore, received), 0, NULL},
    {"_jitter", T_DOUBLE, offsetof(StreamCore, jitter), 0, NULL},
    {"_transit", T_DOUBLE, offsetof(StreamCore, transit), 0, NULL},
    {"_has_transit", T_BOOL, offsetof(StreamCore, has_transit), 0, NULL},
    {NULL}};

PyTypeObject StreamCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver._fastpath.StreamCore",
    .tp_basicsize = sizeof(StreamCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_traverse = (traverseproc)stream_traverse,
    .tp_clear = (inquiry)stream_clear,
    .tp_members = stream_members,
    .tp_doc = "C state of forwarder.InboundStream",
};

/* ----------------------------------------------------------- LegCore */

static int leg_traverse(LegCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->subscriber);
    Py_VISIT(self->kind);
    Py_VISIT(self->payload_map);
    Py_VISIT(self->history);
    return 0;
}

static int leg_clear(LegCore *self) {
    Py_CLEAR(self->subscriber);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->payload_map);
    Py_CLEAR(self->history);
    return 0;
}

static void leg_dealloc(LegCore *self) {
    PyObject_GC_UnTrack(self);
    leg_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef leg_members[] = {
    {"subscriber", T_OBJECT_EX, offsetof(LegCore, subscriber), 0, NULL},
    {"kind", T_OBJECT_EX, offsetof(LegCore, kind), 0, NULL},
    {"payload_map", T_OBJECT_EX, offsetof(LegCore, payload_map), 0, NULL},
    {"history", T_OBJECT_EX, offsetof(LegCore, history), 0, NULL},
    {"ssrc", T_UINT, offsetof(LegCore, ssrc), 0, NULL},
    {"ts_offset", T_UINT, offsetof(LegCore, ts_offset), 0, NULL},
    {"seq_offset", T_INT, offsetof(LegCore, seq_offset), 0, NULL},
    {"_first_seq", T_INT, offsetof(LegCore, first_seq), 0, NULL},
    {"started", T_BOOL, offsetof(LegCore, started), 0, NULL},
    {"packets", T_LONGLONG, offsetof(LegCore, packets), 0, NULL},
    {"octets", T_LONGLONG, offsetof(LegCore, octets), 0, NULL},
    {NULL}};

PyTypeObject LegCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver._fastpath.LegCore",
    .tp_basicsize = sizeof(LegCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)leg_dealloc,
    .tp_traverse = (traverseproc)leg_traverse,
    .tp_clear = (inquiry)leg_clear,
    .tp_members = leg_members,
    .tp_doc = "C state of forwarder.OutboundLeg",
};

/* ------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"init", fastpath_init, METH_VARARGS,
     "init(srtp_protect_address, srtp_unprotect_address)"},
    {"timer", fastpath_timer, METH_NOARGS, "timer() -> fd of a new timerfd"},
    {"arm", fastpath_arm, METH_VARARGS, "arm(fd, microseconds): fire once"},
    {"expired", fastpath_expired, METH_O, "expired(fd) -> whether it fired (clears it)"},
    {"drain", fastpath_drain, METH_VARARGS,
     "drain(fd, routes, fallback, on_error, on_latency) -> datagrams read"},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "mediaserver._fastpath",
    "The media server's per-packet path in C (see forwarder.py)", -1, module_methods};

#define INTERN(var, text)                                                          \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                          \
        return NULL;

PyMODINIT_FUNC PyInit__fastpath(void) {
    INTERN(s_packets_in, "packets_in");
    INTERN(s_bytes_in, "bytes_in");
    INTERN(s_packets_out, "packets_out");
    INTERN(s_bytes_out, "bytes_out");
    INTERN(s_forwarded, "forwarded");
    INTERN(s_drop, "drop");
    INTERN(s_srtp, "srtp");
    INTERN(s_malformed, "malformed");
    INTERN(s_lobby, "lobby");
    INTERN(s_awaiting_keyframe, "awaiting_keyframe");
    INTERN(s_unknown_payload_type, "unknown_payload_type");
    INTERN(s_srtp_protect, "srtp_protect");
    INTERN(s_send_failed, "send_failed");
    INTERN(s_handle_datagram, "handle_datagram");
    INTERN(s_handle_rtp, "handle_plain_rtp");
    INTERN(s_send_nack, "send_nack");
    INTERN(s_on_forward_time, "on_forward_time");
    INTERN(s_keyframes, "keyframes");
    INTERN(s_h264, "video/h264");
    INTERN(s_error, "error");
    INTERN(s_opus_fec, "opus_fec");
    INTERN(s_audio, "audio");
    INTERN(s_video, "video");
    if (PyType_Ready(&PeerCoreType) < 0 || PyType_Ready(&StreamCoreType) < 0 ||
        PyType_Ready(&LegCoreType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "PeerCore", (PyObject *)&PeerCoreType) < 0 ||
        PyModule_AddObjectRef(module, "StreamCore", (PyObject *)&StreamCoreType) < 0 ||
        PyModule_AddObjectRef(module, "LegCore", (PyObject *)&LegCoreType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

