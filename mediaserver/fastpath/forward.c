/* One SRTP datagram of a known peer through the C path: what
 * PeerMedia.handle_datagram, InboundStream.on_rtp and OutboundLeg.forward do in
 * mediaserver/forwarder.py, with the counters of ForwarderStats. */
#include "fastpath.h"

/* --------------------------------------------------------------- counters */

/* The stats object's counter dicts, looked up once per stats object (a worker has
 * one ForwarderStats; its dicts are never replaced).
 *
 * The per-packet counts of audio and video (five a forwarded packet) wait in C
 * integers and go into the dicts once per drain or fast_handle call
 * (flush_counts): a dict update is a lookup, two int conversions and a store,
 * about 3 % of the path's CPU at five a packet. Readers (the metrics
 * collector, the heartbeat, tests) run between drains and see every count. */
enum { T_PACKETS_IN, T_BYTES_IN, T_PACKETS_OUT, T_BYTES_OUT, T_FORWARDED, N_TABLES };
enum { K_AUDIO, K_VIDEO, N_KINDS };
static PyObject *cached_stats = NULL;
static PyObject *cached_tables[N_TABLES];
static long long pending[N_TABLES][N_KINDS];
static int pending_any = 0;

/* stats.<table>[key] += amount in the dict itself */
static int dict_add(PyObject *counts, PyObject *key, long long amount) {
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

/* the waiting counts into the cached stats object's dicts; 0, or -1 with an
 * exception set (the counts stay waiting) */
int flush_counts(void) {
    if (!pending_any || cached_stats == NULL)
        return 0;
    PyObject *keys[N_KINDS] = {s_audio, s_video};
    for (int t = 0; t < N_TABLES; t++) {
        for (int k = 0; k < N_KINDS; k++) {
            if (pending[t][k] == 0)
                continue;
            if (dict_add(cached_tables[t], keys[k], pending[t][k]) < 0)
                return -1;
            pending[t][k] = 0;
        }
    }
    pending_any = 0;
    return 0;
}

static PyObject *table_of(PyObject *stats, int table) {
    if (stats != cached_stats) {
        /* the counts so far belong to the stats object they were counted for */
        if (flush_counts() < 0)
            return NULL;
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

static int kind_of(PyObject *key) {
    if (key == s_audio)
        return K_AUDIO;
    if (key == s_video)
        return K_VIDEO;
    if (PyUnicode_Check(key)) {
        if (PyUnicode_CompareWithASCIIString(key, "audio") == 0)
            return K_AUDIO;
        if (PyUnicode_CompareWithASCIIString(key, "video") == 0)
            return K_VIDEO;
    }
    return -1;
}

/* stats.<table>[key] += amount, as the Python path does (audio and video wait
 * for flush_counts) */
static int bump(PyObject *stats, int table, PyObject *key, long long amount) {
    PyObject *counts = table_of(stats, table);
    if (counts == NULL)
        return -1;
    int kind = kind_of(key);
    if (kind < 0)
        return dict_add(counts, key, amount);
    pending[table][kind] += amount;
    pending_any = 1;
    return 0;
}

/* stats.<name> += 1, for counters that are plain attributes */
static int count(PyObject *stats, PyObject *name) {
    PyObject *current = PyObject_GetAttr(stats, name);
    long long value = current == NULL ? -1 : PyLong_AsLongLong(current);
    Py_XDECREF(current);
    PyObject *more = PyErr_Occurred() ? NULL : PyLong_FromLongLong(value + 1);
    int rc = more == NULL ? -1 : PyObject_SetAttr(stats, name, more);
    Py_XDECREF(more);
    return rc;
}

static int drop(PyObject *stats, PyObject *reason) {
    PyObject *result = PyObject_CallMethodOneArg(stats, s_drop, reason);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
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

void batch_sends(int on) { out.active = on; }

/* send what the batch holds; 0, or -1 with an exception set */
int flush_sends(void) {
    if (out.count == 0)
        return 0;
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
            flush_sends() < 0)
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
                       const RtpHeader *h, int keyframe, double now) {
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
    /* fixed header, CSRCs, our extensions, then what follows the publisher's */
    Py_ssize_t csrc = h->csrc_end - 12;
    Py_ssize_t rest = length - h->payload_offset;
    int abs_send_time = sub->abs_send_time_id;
    int numbered = sub->sent != NULL ? sub->sent_transport_cc_id : 0;
    Py_ssize_t extensions = abs_send_time || numbered ? EXTENSION_BLOCK : 0;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 12 + csrc + extensions + rest);
    if (out == NULL)
        return -1;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    o[0] = (h->first_byte & 0xEF) | (extensions ? 0x10 : 0);
    o[1] = h->marker | (unsigned char)payload_type;
    put16(o + 2, seq);
    put32(o + 4, h->timestamp + leg->ts_offset);
    put32(o + 8, leg->ssrc);
    memcpy(o + 12, data + 12, csrc);
    if (numbered)
        write_transport_seq(o + 12 + csrc, numbered, sub->sent, now,
                            (int)(12 + csrc + extensions + rest));
    else if (abs_send_time)
        write_abs_send_time(o + 12 + csrc, abs_send_time, now);
    memcpy(o + 12 + csrc + extensions, data + h->payload_offset, rest);
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
        if (keyframe && count(publisher->stats, s_keyframes) < 0)
            return -1;
    } else if (opus_has_fec(data + h->payload_offset, h->payload_end - h->payload_offset) &&
               count(publisher->stats, s_opus_fec) < 0) {
        return -1;
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
        int rc = leg_forward((LegCore *)leg, data, length, h, keyframe, now);
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
int peer_handle(PeerCore *peer, unsigned char *buffer, Py_ssize_t length) {
    double now = monotonic();
    peer->last_packet_at = now;
    int is_rtcp = length >= 2 && buffer[1] >= 192 && buffer[1] <= 223;
    if (is_rtcp || peer->rx == NULL || peer->stats == NULL || peer->streams == NULL)
        return call_python((PyObject *)peer, s_handle_datagram, buffer, length, NULL,
                           NULL);
    static double last_timed = 0;
    int timed = now - last_timed >= SAMPLE_INTERVAL;
    if (timed)
        last_timed = now;
    struct timespec start;
    if (timed)
        clock_gettime(CLOCK_MONOTONIC, &start);
    int plain = (int)length;
    if (srtp_unprotect_fn(peer->rx, buffer, &plain) != 0)
        return drop(peer->stats, s_srtp);
    RtpHeader h;
    if (parse_rtp(buffer, plain, &h) < 0)
        return drop(peer->stats, s_malformed);
    if (peer->twcc != NULL) /* every packet, RTX and padding too: all are numbered */
        twcc_record(peer->twcc, peer->transport_cc_id, buffer, &h, now);
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
void report_error(PeerCore *peer, PyObject *on_error) {
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

