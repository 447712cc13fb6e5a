/* The media server's short path in C, shared declarations.
 *
 * mediaserver/forwarder.py is the reference: PeerMedia, InboundStream and
 * OutboundLeg subclass the three types declared here (PeerCore, StreamCore,
 * LegCore), so the state this code reads and writes (sequence offsets, started
 * flags, receive statistics, send history) is the same state their Python methods
 * use. Only the per-packet loop is in C: drain the shared UDP socket, route by
 * address, SRTP unprotect, parse, route by SSRC, receive statistics, keyframe
 * detection, per leg rewrite + history + SRTP protect + send. Anything else (RTCP,
 * RTX, unknown SSRC, errors, NACKs to send, drops to count) goes back to the Python
 * methods, so there is one implementation of every rule that is not per packet.
 *
 * libsrtp is pylibsrtp's own copy: Python hands over the addresses of its
 * srtp_protect/srtp_unprotect and of each session's context (transport.py).
 *
 *   module.c   the extension module and the three types
 *   forward.c  one datagram of a known peer: the path itself, counters, sending
 *   socket.c   draining the shared socket in batches; the batch-window timer
 *   rtp.c      RTP header parsing, keyframe and Opus FEC detection
 *   twcc.c     transport-cc feedback and abs-send-time (congestion control)
 */
#ifndef BEELDBEL_FASTPATH_H
#define BEELDBEL_FASTPATH_H

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
/* histograms observed in Python get at most one sample per this many seconds (per
 * histogram): a fixed small cost at any load, every packet when the load is light */
#define SAMPLE_INTERVAL 0.005
#define BUFFER_SIZE 2048
/* room after the packet for libsrtp's auth tag (pylibsrtp SRTP_MAX_TRAILER_LEN) */
#define SRTP_TRAILER 144
/* larger SRTP datagrams go to the Python path (their copies might not fit) */
#define MAX_DATAGRAM (BUFFER_SIZE - SRTP_TRAILER)
/* what one read takes: anything else (DTLS, STUN) may be larger */
#define RECV_SIZE 4096
#define DRAIN_BATCH 256 /* datagrams per wake-up at most, then other work runs */

typedef int (*srtp_func)(void *ctx, void *buffer, int *length);
extern srtp_func srtp_protect_fn;
extern srtp_func srtp_unprotect_fn;

/* interned strings, made once by the module */
extern PyObject *s_packets_in, *s_bytes_in, *s_packets_out, *s_bytes_out,
    *s_forwarded, *s_drop, *s_srtp, *s_malformed, *s_lobby, *s_awaiting_keyframe,
    *s_unknown_payload_type, *s_srtp_protect, *s_send_failed, *s_handle_datagram,
    *s_handle_rtp, *s_send_nack, *s_on_forward_time, *s_keyframes, *s_h264, *s_error,
    *s_opus_fec, *s_audio, *s_video;

static inline double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ types */

/* arrivals of a publisher's transport-wide sequence numbers not yet reported */
#define TWCC_RING 2048
typedef struct {
    long long max;  /* highest extended sequence number seen, -1: none yet */
    long long next; /* the first one the next feedback reports */
    unsigned char feedback_count;
    long long seq[TWCC_RING]; /* which extended number a slot holds */
    long long arrival_us[TWCC_RING];
} TransportCc;

/* what we sent a subscriber with our own transport-wide sequence numbers: its
 * transport-cc feedback says when each arrived, our estimator (estimator.py)
 * needs when it left and how big it was; ~3 s of video at 2.5 Mbit/s */
#define SENT_RING 1024
typedef struct {
    unsigned int next; /* the next sequence number, 16 bits */
    int seq[SENT_RING]; /* which number a slot holds, -1: none */
    double at[SENT_RING];
    int size[SENT_RING];
} SentLog;

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
    /* header extension ids negotiated with this peer (0: not negotiated) */
    int transport_cc_id;  /* on what it sends us: answered with feedback */
    int abs_send_time_id; /* on what we send it: its own estimator reads it */
    int sent_transport_cc_id; /* …or our numbers on what we send, for our estimator */
    TransportCc *twcc;    /* while transport_cc_id is set */
    SentLog *sent;        /* while sent_transport_cc_id is set */
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

extern PyTypeObject PeerCoreType, StreamCoreType, LegCoreType;

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


/* rtp.c */
int parse_rtp(const unsigned char *data, Py_ssize_t length, RtpHeader *h);
int is_vp8_keyframe_start(const unsigned char *p, Py_ssize_t n);
int is_h264_keyframe_start(const unsigned char *p, Py_ssize_t n);
int opus_has_fec(const unsigned char *p, Py_ssize_t n);

/* twcc.c */
#define EXTENSION_BLOCK 8 /* the extension block: profile, length, one element */
const unsigned char *find_extension(const unsigned char *data, const RtpHeader *h,
                                    int id, int *size);
void twcc_record(TransportCc *t, int id, const unsigned char *data, const RtpHeader *h,
                 double now);
PyObject *twcc_feedback(TransportCc *t, unsigned int sender_ssrc,
                        unsigned int media_ssrc);
void write_abs_send_time(unsigned char *o, int id, double now);
void write_transport_seq(unsigned char *o, int id, SentLog *log, double now, int size);

/* forward.c */
int peer_handle(PeerCore *peer, unsigned char *buffer, Py_ssize_t length);
void report_error(PeerCore *peer, PyObject *on_error);
void batch_sends(int on);
int flush_sends(void);
int flush_counts(void);

#endif
