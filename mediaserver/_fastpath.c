/* The media server's short path in C: one SRTP datagram in, its rewritten copies
 * out, without running Python for the common packet.
 *
 * mediaserver/forwarder.py is the reference: PeerMedia, InboundStream and
 * OutboundLeg subclass the three types here (PeerCore, StreamCore, LegCore), so
 * the state this code reads and writes (sequence offsets, started flags, receive
 * statistics, send history) is the same state their Python methods use. Only the
 * per-packet loop is here: drain the shared UDP socket, route by address, SRTP
 * unprotect, parse, route by SSRC, receive statistics, keyframe detection, per leg
 * rewrite + history + SRTP protect + sendto. Anything else (RTCP, RTX, unknown
 * SSRC, errors, NACKs to send, drops to count) goes back to the Python methods,
 * so there is one implementation of every rule that is not per packet.
 *
 * libsrtp is pylibsrtp's own copy: Python hands over the addresses of its
 * srtp_protect/srtp_unprotect and of each session's context (transport.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: it defines _GNU_SOURCE (recvmmsg, sendmmsg) */
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HISTORY_SIZE 512
#define MAX_NACK_GAP 64
#define TIMING_SAMPLE 16
#define BUFFER_SIZE 2048
/* room after the packet for libsrtp's auth tag (pylibsrtp SRTP_MAX_TRAILER_LEN) */
#define SRTP_TRAILER 144
/* larger SRTP datagrams go to the Python path (their copies might not fit) */
#define MAX_DATAGRAM (BUFFER_SIZE - SRTP_TRAILER)
/* what one read takes: anything else (DTLS, STUN) may be larger */
#define RECV_SIZE 4096
#define DRAIN_BATCH 256 /* datagrams per wake-up at most, then other work runs */

typedef int (*srtp_func)(void *ctx, void *buffer, int *length);
static srtp_func srtp_protect_fn = NULL;
static srtp_func srtp_unprotect_fn = NULL;

/* interned strings, looked up once */
static PyObject *s_audio, *s_video, *s_rtcp, *s_packets_in, *s_bytes_in,
    *s_packets_out, *s_bytes_out, *s_forwarded, *s_drop, *s_srtp, *s_malformed,
    *s_lobby, *s_awaiting_keyframe, *s_unknown_payload_type, *s_srtp_protect,
    *s_send_failed, *s_handle_datagram, *s_handle_rtp, *s_send_nack,
    *s_on_forward_time, *s_keyframes, *s_h264, *s_error;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ types */

typedef struct {
    PyObject_HEAD
    /* set by Python (forwarder.PeerMedia) */
    PyObject *stats;
    PyObject *streams;
    char forwarding;
    double last_packet_at;
    long long timing_count;
    /* the route: set by attach() once DTLS is up on the shared socket */
    void *rx;
    void *tx;
    PyObject *srtp_owner; /* keeps the pylibsrtp sessions (and contexts) alive */
    int fd;
    struct sockaddr_storage remote;
    socklen_t remote_len;
} PeerCore;

typedef struct {
    PyObject_HEAD
    PyObject *publisher;
    PyObject *kind;
    PyObject *legs;
    PyObject *payload_types;
    unsigned int media_ssrc;
    int clock_rate;
    char is_video;
    int max_seq;
    long long cycles;
    int base_seq;
    long long received;
    double jitter;
    double transit;
    char has_transit;
} StreamCore;

typedef struct {
    PyObject_HEAD
    PyObject *subscriber;
    PyObject *kind;
    PyObject *payload_map;
    PyObject *history;
    unsigned int ssrc;
    unsigned int ts_offset;
    int seq_offset;
    int first_seq;
    char started;
    long long packets;
    long long octets;
} LegCore;

static PyTypeObject PeerCoreType, StreamCoreType, LegCoreType;

/* --------------------------------------------------------------- counters */

/* The stats object's counter dicts, looked up once per stats object (a worker has
 * one ForwarderStats; its dicts are never replaced). */
enum { T_PACKETS_IN, T_BYTES_IN, T_PACKETS_OUT, T_BYTES_OUT, T_FORWARDED, N_TABLES };
static PyObject *cached_stats = NULL;
static PyObject *cached_tables[N_TABLES];

static PyObject *table_of(PyObject *stats, int table) {
    if (stats != cached_stats) {
        PyObject *names[N_TABLES] = {s_packets_in, s_bytes_in, s_packets_out, s_bytes_out,
                                     s_forwarded};
        PyObject *tables[N_TABLES];
        for (int i = 0; i < N_TABLES; i++) {
            tables[i] = PyObject_GetAttr(stats, names[i]);
            if (tables[i] == NULL || !PyDict_Check(tables[i])) {
                if (tables[i] != NULL)
                    PyErr_SetString(PyExc_TypeError, "stats counters must be dicts");
                for (int j = 0; j <= i; j++)
                    Py_XDECREF(tables[j]);
                return NULL;
            }
        }
        for (int i = 0; i < N_TABLES; i++) {
            Py_XSETREF(cached_tables[i], tables[i]);
        }
        Py_INCREF(stats);
        Py_XSETREF(cached_stats, stats);
    }
    return cached_tables[table];
}

/* stats.<table>[key] += amount, as the Python path does */
static int bump(PyObject *stats, int table, PyObject *key, long long amount) {
    PyObject *counts = table_of(stats, table);
    if (counts == NULL)
        return -1;
    PyObject *current = PyDict_GetItemWithError(counts, key);
    long long value = 0;
    if (current != NULL) {
        value = PyLong_AsLongLong(current);
        if (value == -1 && PyErr_Occurred())
            return -1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *updated = PyLong_FromLongLong(value + amount);
    int rc = updated == NULL ? -1 : PyDict_SetItem(counts, key, updated);
    Py_XDECREF(updated);
    return rc;
}

static int drop(PyObject *stats, PyObject *reason) {
    PyObject *result = PyObject_CallMethodOneArg(stats, s_drop, reason);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* ------------------------------------------------------------ RTP parsing */

typedef struct {
    unsigned char first_byte, marker, payload_type;
    unsigned int sequence_number, timestamp, ssrc;
    Py_ssize_t csrc_end, payload_offset, payload_end;
} RtpHeader;

static inline unsigned int u16(const unsigned char *p) { return (p[0] << 8) | p[1]; }
static inline unsigned int u32(const unsigned char *p) {
    return ((unsigned int)p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}
static inline void put16(unsigned char *p, unsigned int v) {
    p[0] = v >> 8;
    p[1] = v;
}
static inline void put32(unsigned char *p, unsigned int v) {
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* 0 on success; -1 for a packet packet.parse_rtp would call malformed */
static int parse_rtp(const unsigned char *data, Py_ssize_t length, RtpHeader *h) {
    if (length < 12)
        return -1;
    h->first_byte = data[0];
    if (data[0] >> 6 != 2)
        return -1;
    h->marker = data[1] & 0x80;
    h->payload_type = data[1] & 0x7F;
    h->sequence_number = u16(data + 2);
    h->timestamp = u32(data + 4);
    h->ssrc = u32(data + 8);
    Py_ssize_t offset = 12 + 4 * (data[0] & 0x0F);
    h->csrc_end = offset;
    if (data[0] & 0x10) {
        if (length < offset + 4)
            return -1;
        offset += 4 + 4 * (Py_ssize_t)u16(data + offset + 2);
    }
    Py_ssize_t end = length;
    if (data[0] & 0x20) {
        if (data[length - 1] == 0)
            return -1;
        end -= data[length - 1];
    }
    if (offset > end)
        return -1;
    h->payload_offset = offset;
    h->payload_end = end;
    return 0;
}

static int is_vp8_keyframe_start(const unsigned char *p, Py_ssize_t n) {
    if (n < 2)
        return 0;
    unsigned char first = p[0];
    if (!(first & 0x10) || (first & 0x07))
        return 0;
    Py_ssize_t offset = 1;
    if (first & 0x80) {
        unsigned char ext = p[1];
        offset = 2;
        if (ext & 0x80)
            offset += (n > 2 && (p[2] & 0x80)) ? 2 : 1;
        if (ext & 0x40)
            offset += 1;
        if (ext & 0x30)
            offset += 1;
    }
    return n > offset && !(p[offset] & 0x01);
}

static int is_h264_keyframe_start(const unsigned char *p, Py_ssize_t n) {
    if (n < 1)
        return 0;
    int nal_type = p[0] & 0x1F;
    if (nal_type == 5 || nal_type == 7)
        return 1;
    if (nal_type == 24) {
        Py_ssize_t offset = 1;
        while (offset + 2 < n) {
            Py_ssize_t size = u16(p + offset);
            int inner = p[offset + 2] & 0x1F;
            if (inner == 5 || inner == 7)
                return 1;
            offset += 2 + size;
        }
        return 0;
    }
    if (nal_type == 28 && n > 1)
        return (p[1] & 0x80) && (p[1] & 0x1F) == 5;
    return 0;
}

/* ------------------------------------------------------------- the path */

/* InboundStream._update_stats; may ask the publisher to send a NACK */
static int update_stats(StreamCore *s, const RtpHeader *h, double now) {
    int seq = (int)h->sequence_number;
    if (s->max_seq < 0) {
        s->max_seq = s->base_seq = seq;
    } else {
        int delta = (seq - s->max_seq) & 0xFFFF;
        if (0 < delta && delta < 0x8000) {
            if (seq < s->max_seq)
                s->cycles += 1 << 16;
            if (1 < delta && delta <= MAX_NACK_GAP && s->is_video) {
                PyObject *missing = PyList_New(delta - 1);
                if (missing == NULL)
                    return -1;
                for (int i = 1; i < delta; i++) {
                    PyObject *n = PyLong_FromLong((s->max_seq + i) & 0xFFFF);
                    if (n == NULL) {
                        Py_DECREF(missing);
                        return -1;
                    }
                    PyList_SET_ITEM(missing, i - 1, n);
                }
                PyObject *ssrc = PyLong_FromUnsignedLong(s->media_ssrc);
                PyObject *r = ssrc == NULL ? NULL
                                           : PyObject_CallMethodObjArgs(
                                                 s->publisher, s_send_nack, ssrc,
                                                 missing, NULL);
                Py_XDECREF(ssrc);
                Py_DECREF(missing);
                if (r == NULL)
                    return -1;
                Py_DECREF(r);
            }
            s->max_seq = seq;
        }
    }
    s->received += 1;
    double arrival = now * s->clock_rate;
    double transit = arrival - (double)h->timestamp;
    if (s->has_transit) {
        double d = transit - s->transit;
        if (d < 0)
            d = -d;
        s->jitter += (d - s->jitter) / 16;
    }
    s->transit = transit;
    s->has_transit = 1;
    return 0;
}

static int stream_keyframe(StreamCore *s, const unsigned char *data, const RtpHeader *h) {
    const unsigned char *payload = data + h->payload_offset;
    Py_ssize_t n = h->payload_end - h->payload_offset;
    PyObject *pt = PyLong_FromLong(h->payload_type);
    if (pt == NULL)
        return -1;
    PyObject *mime = s->payload_types == NULL
                         ? NULL
                         : PyDict_GetItemWithError(s->payload_types, pt);
    Py_DECREF(pt);
    if (mime == NULL && PyErr_Occurred())
        return -1;
    int h264 = mime != NULL && PyUnicode_Check(mime) &&
               PyUnicode_Compare(mime, s_h264) == 0;
    return h264 ? is_h264_keyframe_start(payload, n) : is_vp8_keyframe_start(payload, n);
}

/* Outgoing datagrams of one drain, sent with one sendmmsg at its end (or when
 * full). Outside a drain (fast_handle) each is sent at once. */
#define SEND_BATCH 64
static struct {
    int active;
    int fd;
    int count;
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    struct sockaddr_storage to[SEND_BATCH];
    PyObject *stats[SEND_BATCH]; /* whose drop counter a failure bumps */
    unsigned char data[SEND_BATCH][BUFFER_SIZE];
} out;

static int flush(void) {
    int rc = 0;
    int sent = 0;
    while (sent < out.count) {
        int n = sendmmsg(out.fd, out.msgs + sent, out.count - sent, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* this datagram failed (full buffer, ICMP error): count it, go on */
            if (rc == 0 && drop(out.stats[sent], s_send_failed) < 0)
                rc = -1;
            n = 1;
        }
        sent += n;
    }
    for (int i = 0; i < out.count; i++)
        Py_CLEAR(out.stats[i]);
    out.count = 0;
    return rc;
}

/* protect a plain packet for `peer` and send it; its counters as PeerMedia.send_rtp */
static int send_protected(PeerCore *peer, const unsigned char *plain, Py_ssize_t size,
                          PyObject *kind) {
    if (peer->tx != NULL) {
        if (out.count > 0 && (out.count == SEND_BATCH || out.fd != peer->fd) &&
            flush() < 0)
            return -1;
        int slot = out.count;
        unsigned char *buffer = out.data[slot];
        int length = (int)size;
        memcpy(buffer, plain, size);
        if (srtp_protect_fn(peer->tx, buffer, &length) != 0)
            return drop(peer->stats, s_srtp_protect);
        if (out.active) {
            out.fd = peer->fd;
            out.iov[slot].iov_base = buffer;
            out.iov[slot].iov_len = length;
            memcpy(&out.to[slot], &peer->remote, peer->remote_len);
            struct msghdr *m = &out.msgs[slot].msg_hdr;
            memset(m, 0, sizeof *m);
            m->msg_name = &out.to[slot];
            m->msg_namelen = peer->remote_len;
            m->msg_iov = &out.iov[slot];
            m->msg_iovlen = 1;
            Py_INCREF(peer->stats);
            out.stats[slot] = peer->stats;
            out.count++;
        } else if (sendto(peer->fd, buffer, length, 0, (struct sockaddr *)&peer->remote,
                          peer->remote_len) < 0) {
            /* a full socket buffer or an ICMP error: media is not queued */
            return drop(peer->stats, s_send_failed);
        }
    }
    if (bump(peer->stats, T_PACKETS_OUT, kind, 1) < 0)
        return -1;
    return bump(peer->stats, T_BYTES_OUT, kind, size);
}

/* OutboundLeg.forward: rewrite (packet.rewrite_rtp), keep for NACKs, send */
static int leg_forward(LegCore *leg, const unsigned char *data, Py_ssize_t length,
                       const RtpHeader *h, int keyframe) {
    PeerCore *sub = (PeerCore *)leg->subscriber;
    if (sub->stats == NULL || leg->kind == NULL || leg->payload_map == NULL ||
        !PyDict_Check(leg->payload_map)) {
        PyErr_SetString(PyExc_TypeError, "a leg of the fast path is not set up");
        return -1;
    }
    if (!leg->started) {
        if (!keyframe)
            return drop(sub->stats, s_awaiting_keyframe);
        leg->started = 1;
        leg->seq_offset = (leg->first_seq - (int)h->sequence_number) & 0xFFFF;
    }
    PyObject *pt = PyLong_FromLong(h->payload_type);
    if (pt == NULL)
        return -1;
    PyObject *mapped = PyDict_GetItemWithError(leg->payload_map, pt);
    Py_DECREF(pt);
    if (mapped == NULL)
        return PyErr_Occurred() ? -1 : drop(sub->stats, s_unknown_payload_type);
    long payload_type = PyLong_AsLong(mapped);
    if (payload_type == -1 && PyErr_Occurred())
        return -1;
    unsigned int seq = (h->sequence_number + leg->seq_offset) & 0xFFFF;
    /* fixed header, CSRCs, then everything after the header extensions */
    Py_ssize_t csrc = h->csrc_end - 12;
    Py_ssize_t rest = length - h->payload_offset;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 12 + csrc + rest);
    if (out == NULL)
        return -1;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    o[0] = h->first_byte & 0xEF;
    o[1] = h->marker | (unsigned char)payload_type;
    put16(o + 2, seq);
    put32(o + 4, h->timestamp + leg->ts_offset);
    put32(o + 8, leg->ssrc);
    memcpy(o + 12, data + 12, csrc);
    memcpy(o + 12 + csrc, data + h->payload_offset, rest);
    Py_ssize_t size = PyBytes_GET_SIZE(out);
    int rc = 0;
    if (PyList_Check(leg->history) && PyList_GET_SIZE(leg->history) == HISTORY_SIZE) {
        Py_INCREF(out);
        PyList_SetItem(leg->history, seq % HISTORY_SIZE, out);
    }
    leg->packets += 1;
    leg->octets += h->payload_end - h->payload_offset;
    rc = send_protected(sub, o, size, leg->kind);
    Py_DECREF(out);
    if (rc < 0)
        return -1;
    return bump(sub->stats, T_FORWARDED, leg->kind, 1);
}

/* what a Python subclass must have set before the C path may use a stream */
static int stream_ready(StreamCore *s) {
    if (s->publisher == NULL || !PyObject_TypeCheck(s->publisher, &PeerCoreType) ||
        ((PeerCore *)s->publisher)->stats == NULL || s->kind == NULL ||
        s->legs == NULL || !PyList_Check(s->legs) ||
        (s->payload_types != NULL && !PyDict_Check(s->payload_types))) {
        PyErr_SetString(PyExc_TypeError, "a stream of the fast path is not set up");
        return 0;
    }
    return 1;
}

/* InboundStream.on_rtp + forward */
static int stream_on_rtp(StreamCore *s, const unsigned char *data, Py_ssize_t length,
                         const RtpHeader *h, double now) {
    PeerCore *publisher = (PeerCore *)s->publisher;
    if (update_stats(s, h, now) < 0)
        return -1;
    int keyframe = 0;
    if (s->is_video) {
        keyframe = stream_keyframe(s, data, h);
        if (keyframe < 0)
            return -1;
        if (keyframe) {
            PyObject *count = PyObject_GetAttr(publisher->stats, s_keyframes);
            long long value = count == NULL ? -1 : PyLong_AsLongLong(count);
            Py_XDECREF(count);
            PyObject *more = PyErr_Occurred() ? NULL : PyLong_FromLongLong(value + 1);
            int rc = more == NULL ? -1
                                  : PyObject_SetAttr(publisher->stats, s_keyframes, more);
            Py_XDECREF(more);
            if (rc < 0)
                return -1;
        }
    }
    if (!publisher->forwarding)
        return drop(publisher->stats, s_lobby);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(s->legs); i++) {
        PyObject *leg = PyList_GET_ITEM(s->legs, i);
        if (!PyObject_TypeCheck(leg, &LegCoreType) || ((LegCore *)leg)->subscriber == NULL ||
            !PyObject_TypeCheck(((LegCore *)leg)->subscriber, &PeerCoreType)) {
            PyErr_SetString(PyExc_TypeError, "a leg of the fast path is not a LegCore");
            return -1;
        }
        Py_INCREF(leg);
        int rc = leg_forward((LegCore *)leg, data, length, h, keyframe);
        Py_DECREF(leg);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int call_python(PyObject *target, PyObject *method, const unsigned char *data,
                       Py_ssize_t length, PyObject *extra1, PyObject *extra2) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, length);
    if (bytes == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodObjArgs(target, method, bytes, extra1, extra2, NULL);
    Py_DECREF(bytes);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* PeerMedia.handle_datagram for one SRTP datagram (buffer has trailer room) */
static int peer_handle(PeerCore *peer, unsigned char *buffer, Py_ssize_t length) {
    double now = monotonic();
    peer->last_packet_at = now;
    int is_rtcp = length >= 2 && buffer[1] >= 192 && buffer[1] <= 223;
    if (is_rtcp || peer->rx == NULL || peer->stats == NULL || peer->streams == NULL)
        return call_python((PyObject *)peer, s_handle_datagram, buffer, length, NULL,
                           NULL);
    peer->timing_count += 1;
    int timed = peer->timing_count % TIMING_SAMPLE == 0;
    struct timespec start;
    if (timed)
        clock_gettime(CLOCK_MONOTONIC, &start);
    int plain = (int)length;
    if (srtp_unprotect_fn(peer->rx, buffer, &plain) != 0)
        return drop(peer->stats, s_srtp);
    RtpHeader h;
    if (parse_rtp(buffer, plain, &h) < 0)
        return drop(peer->stats, s_malformed);
    PyObject *ssrc = PyLong_FromUnsignedLong(h.ssrc);
    if (ssrc == NULL)
        return -1;
    PyObject *stream = PyDict_GetItemWithError(peer->streams, ssrc);
    Py_DECREF(ssrc);
    int rc;
    if (stream == NULL) {
        if (PyErr_Occurred())
            return -1;
        /* RTX or an unknown SSRC: the Python path decides */
        PyObject *size = PyLong_FromSsize_t(length);
        PyObject *when = PyFloat_FromDouble(now);
        rc = size == NULL || when == NULL
                 ? -1
                 : call_python((PyObject *)peer, s_handle_rtp, buffer, plain, size, when);
        Py_XDECREF(size);
        Py_XDECREF(when);
    } else if (!PyObject_TypeCheck(stream, &StreamCoreType)) {
        PyErr_SetString(PyExc_TypeError, "a stream of the fast path is not a StreamCore");
        return -1;
    } else if (!stream_ready((StreamCore *)stream)) {
        return -1;
    } else {
        StreamCore *s = (StreamCore *)stream;
        Py_INCREF(stream);
        rc = bump(peer->stats, T_PACKETS_IN, s->kind, 1);
        if (rc == 0)
            rc = bump(peer->stats, T_BYTES_IN, s->kind, length);
        if (rc == 0)
            rc = stream_on_rtp(s, buffer, plain, &h, now);
        Py_DECREF(stream);
    }
    if (rc == 0 && timed) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        double spent = (double)(end.tv_sec - start.tv_sec) +
                       (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
        PyObject *seconds = PyFloat_FromDouble(spent);
        PyObject *r = seconds == NULL ? NULL
                                      : PyObject_CallMethodOneArg(
                                            peer->stats, s_on_forward_time, seconds);
        Py_XDECREF(seconds);
        Py_XDECREF(r);
        rc = r == NULL ? -1 : 0;
    }
    return rc;
}

/* an error inside the path: counted, reported, and the next datagram goes on */
static void report_error(PeerCore *peer, PyObject *on_error) {
    PyObject *type, *exc, *traceback;
    PyErr_Fetch(&type, &exc, &traceback);
    PyErr_NormalizeException(&type, &exc, &traceback);
    if (exc != NULL && traceback != NULL)
        PyException_SetTraceback(exc, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (peer != NULL && peer->stats != NULL && drop(peer->stats, s_error) < 0)
        PyErr_Clear();
    PyObject *r = PyObject_CallOneArg(on_error, exc == NULL ? Py_None : exc);
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(exc);
}

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

static PyObject *fastpath_drain(PyObject *module, PyObject *args) {
    int fd;
    PyObject *routes, *fallback, *on_error, *on_latency;
    if (!PyArg_ParseTuple(args, "iO!OOO", &fd, &PyDict_Type, &routes, &fallback,
                          &on_error, &on_latency))
        return NULL;
    long handled = 0;
    static unsigned long sampled = 0;
    out.active = 1;
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
            timed[i] = ++sampled % TIMING_SAMPLE == 0 &&
                       received_at(&in.msgs[i].msg_hdr, &kernel[i]);
            if (in.msgs[i].msg_len == 0)
                continue;
            handled++;
            dispatch(in.data[i], in.msgs[i].msg_len, &in.from[i], routes, fallback,
                     on_error);
        }
        if (out.count > 0 && flush() < 0)
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
    out.active = 0;
    return PyLong_FromLong(handled);
}

static PyObject *fastpath_init(PyObject *module, PyObject *args) {
    unsigned long long protect, unprotect;
    if (!PyArg_ParseTuple(args, "KK", &protect, &unprotect))
        return NULL;
    srtp_protect_fn = (srtp_func)(uintptr_t)protect;
    srtp_unprotect_fn = (srtp_func)(uintptr_t)unprotect;
    Py_RETURN_NONE;
}

/* A timer with microsecond resolution for the batch window (the event loop's own
 * timers tick in milliseconds). */
static PyObject *fastpath_timer(PyObject *module, PyObject *unused) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

static PyObject *fastpath_arm(PyObject *module, PyObject *args) {
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

static PyObject *fastpath_expired(PyObject *module, PyObject *arg) {
    int fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    uint64_t count = 0;
    if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(count > 0);
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
    if (peer_handle(self, buffer, length) < 0)
        return NULL;
    Py_RETURN_NONE;
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
    {NULL}};

static PyMethodDef peer_methods[] = {
    {"attach", (PyCFunction)peer_attach, METH_VARARGS,
     "attach(rx_ctx, tx_ctx, owner, fd, host, port): SRTP contexts and route"},
    {"detach", (PyCFunction)peer_detach, METH_NOARGS, "stop sending from C"},
    {"fast_handle", (PyCFunction)peer_fast_handle, METH_O,
     "one SRTP datagram through the C path (as the socket drain does)"},
    {NULL}};

static PyGetSetDef peer_getset[] = {
    {"attached", (getter)peer_attached, NULL, "the C path can send to this peer", NULL},
    {NULL}};

static PyTypeObject PeerCoreType = {
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

static PyTypeObject StreamCoreType = {
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

static PyTypeObject LegCoreType = {
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
    INTERN(s_audio, "audio");
    INTERN(s_video, "video");
    INTERN(s_rtcp, "rtcp");
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
