/* Congestion control signals, per packet: transport-wide sequence numbers in,
 * transport-cc feedback out, abs-send-time on what we send.
 *
 * A publisher's browser numbers every packet of its transport (the transport-cc
 * header extension, draft-holmer-rmcat-transport-wide-cc-extensions-01). We note
 * when each one arrived; about ten times a second forwarder.PeerMedia asks for the
 * feedback packet that tells the browser, so its delay-based estimator can size
 * the citizen's uplink. A subscriber's browser estimates its downlink itself from
 * the abs-send-time we write on each packet and reports it as REMB, or numbers
 * them with our own transport-wide sequence numbers, whose feedback our estimator
 * reads (estimator.py); the publisher gets the minimum over its subscribers. */
#include "fastpath.h"

/* statuses in one feedback packet at most: ~0.4 s of video at 1.5 Mbit/s, and a
 * packet well under the MTU (2 bytes per 7 statuses, 1-2 bytes per arrival) */
#define MAX_STATUS 384

/* the value of header extension `id` in the packet, or NULL (RFC 8285: one-byte
 * and two-byte forms) */
const unsigned char *find_extension(const unsigned char *data, const RtpHeader *h,
                                    int id, int *size) {
    if (!(h->first_byte & 0x10) || id <= 0)
        return NULL;
    const unsigned char *p = data + h->csrc_end;
    unsigned int profile = u16(p);
    const unsigned char *end = data + h->payload_offset;
    p += 4;
    if (profile == 0xBEDE) {
        while (p < end) {
            int element = p[0] >> 4, length = (p[0] & 0x0F) + 1;
            if (p[0] == 0) { /* padding */
                p++;
                continue;
            }
            if (element == 15 || p + 1 + length > end)
                return NULL;
            if (element == id) {
                *size = length;
                return p + 1;
            }
            p += 1 + length;
        }
    } else if ((profile & 0xFFF0) == 0x1000) {
        while (p + 1 < end) {
            if (p[0] == 0) {
                p++;
                continue;
            }
            int element = p[0], length = p[1];
            if (p + 2 + length > end)
                return NULL;
            if (element == id) {
                *size = length;
                return p + 2;
            }
            p += 2 + length;
        }
    }
    return NULL;
}

static long long micros(double seconds) { return (long long)(seconds * 1e6); }

static int received(const TransportCc *t, long long seq) {
    return t->seq[seq % TWCC_RING] == seq;
}

/* note the arrival of the packet's transport-wide sequence number, if it has one */
void twcc_record(TransportCc *t, int id, const unsigned char *data, const RtpHeader *h,
                 double now) {
    int size = 0;
    const unsigned char *value = find_extension(data, h, id, &size);
    if (value == NULL || size != 2)
        return;
    int seq = (int)u16(value);
    long long ext;
    if (t->max < 0) {
        /* far from zero, so that a reordered earlier packet stays positive */
        ext = (1LL << 32) + seq;
        t->max = t->next = ext;
    } else {
        int delta = (seq - (int)(t->max & 0xFFFF)) & 0xFFFF;
        ext = delta < 0x8000 ? t->max + delta : t->max - (0x10000 - delta);
    }
    if (ext < t->next)
        return; /* its feedback has gone: a late packet counts as lost */
    if (ext - t->next >= TWCC_RING)
        t->next = ext; /* a jump (or a long silence): report from here on */
    if (ext > t->max)
        t->max = ext;
    t->seq[ext % TWCC_RING] = ext;
    t->arrival_us[ext % TWCC_RING] = micros(now);
}

/* the feedback for everything not reported yet, as one RTCP packet (bytes), or
 * None; call again while it returns bytes (one packet holds MAX_STATUS at most) */
PyObject *twcc_feedback(TransportCc *t, unsigned int sender_ssrc,
                        unsigned int media_ssrc) {
    if (t->max < 0 || t->max < t->next)
        Py_RETURN_NONE;
    long long first = t->next;
    while (!received(t, first))
        first++; /* stops at t->max at the latest: it was received */
    long long reference = t->arrival_us[first % TWCC_RING] / 64000;
    long long clock = reference * 64000;
    unsigned char symbols[MAX_STATUS];
    int deltas[MAX_STATUS];
    int count = 0, delta_bytes = 0;
    for (long long seq = t->next; seq <= t->max && count < MAX_STATUS; seq++) {
        if (!received(t, seq)) {
            symbols[count++] = 0;
            continue;
        }
        long long d = t->arrival_us[seq % TWCC_RING] - clock;
        long long units = d >= 0 ? (d + 125) / 250 : -((125 - d) / 250);
        if (units < -32768 || units > 32767)
            break; /* the next packet takes it, from a new reference time */
        symbols[count] = units >= 0 && units <= 255 ? 1 : 2;
        deltas[count] = (int)units;
        delta_bytes += symbols[count];
        clock += units * 250;
        count++;
    }
    int chunks = (count + 6) / 7;
    int size = 20 + 2 * chunks + delta_bytes;
    int padding = (4 - size % 4) % 4;
    PyObject *packet = PyBytes_FromStringAndSize(NULL, size + padding);
    if (packet == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(packet);
    memset(p, 0, size + padding);
    p[0] = 0x80 | (padding ? 0x20 : 0) | 15; /* FMT 15: transport-cc */
    p[1] = 205;                              /* RTPFB */
    put16(p + 2, (size + padding) / 4 - 1);
    put32(p + 4, sender_ssrc);
    put32(p + 8, media_ssrc);
    put16(p + 12, (unsigned int)(t->next & 0xFFFF));
    put16(p + 14, count);
    put32(p + 16, ((unsigned int)(reference & 0xFFFFFF) << 8) | t->feedback_count);
    t->feedback_count++;
    unsigned char *o = p + 20;
    for (int c = 0; c < chunks; c++) { /* status vector chunks, two bits a symbol */
        unsigned int chunk = 0xC000;
        for (int i = 0; i < 7 && c * 7 + i < count; i++)
            chunk |= (unsigned int)symbols[c * 7 + i] << (12 - 2 * i);
        put16(o, chunk);
        o += 2;
    }
    for (int i = 0; i < count; i++) {
        if (symbols[i] == 1) {
            *o++ = (unsigned char)deltas[i];
        } else if (symbols[i] == 2) {
            put16(o, (unsigned int)(deltas[i] & 0xFFFF));
            o += 2;
        }
    }
    if (padding)
        p[size + padding - 1] = (unsigned char)padding;
    t->next += count;
    return packet;
}

/* an extension block of one one-byte-header element (RFC 8285) of `length` bytes
 * (at most 3, so the block is one word after its header: EXTENSION_BLOCK) */
static void start_block(unsigned char *o, int id, int length) {
    o[0] = 0xBE;
    o[1] = 0xDE;
    o[2] = 0;
    o[3] = 1;
    o[4] = (unsigned char)((id << 4) | (length - 1));
}

/* the abs-send-time extension block for a packet sent now: 6.18 fixed point
 * seconds, 24 bits; only differences matter, so the monotonic clock will do */
void write_abs_send_time(unsigned char *o, int id, double now) {
    unsigned int value = (unsigned int)((unsigned long long)(now * 262144.0) & 0xFFFFFF);
    start_block(o, id, 3);
    o[5] = value >> 16;
    o[6] = value >> 8;
    o[7] = value;
}

/* the transport-cc extension block with the next of our sequence numbers for
 * this subscriber, noted with the time and the packet's size */
void write_transport_seq(unsigned char *o, int id, SentLog *log, double now, int size) {
    unsigned int seq = log->next & 0xFFFF;
    log->next = (seq + 1) & 0xFFFF;
    log->seq[seq % SENT_RING] = (int)seq;
    log->at[seq % SENT_RING] = now;
    log->size[seq % SENT_RING] = size;
    start_block(o, id, 2);
    o[5] = seq >> 8;
    o[6] = seq & 0xFF;
    o[7] = 0;
}
