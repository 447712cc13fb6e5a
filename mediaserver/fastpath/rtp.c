/* RTP at the byte level: what packet.parse_rtp and the keyframe checks of
 * mediaserver/packet.py do, for the C path. */
#include "fastpath.h"

/* 0 on success; -1 for a packet packet.parse_rtp would call malformed */
int parse_rtp(const unsigned char *data, Py_ssize_t length, RtpHeader *h) {
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

int is_vp8_keyframe_start(const unsigned char *p, Py_ssize_t n) {
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

int is_h264_keyframe_start(const unsigned char *p, Py_ssize_t n) {
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

/* Whether an Opus packet (RFC 6716) carries in-band FEC: the LBRR flag of its SILK
 * layer. SILK codes its voice-activity flags (one per 20 ms, or one for a 10 ms
 * frame) and then its LBRR flag first, each with probability 1/2, so they are the
 * first bits after the TOC byte; a stereo packet repeats them for the side
 * channel. CELT-only packets (configs 16-31) have no SILK layer, and only packets
 * whose first frame starts right after the TOC byte (codes 0 and 1) are read. */
int opus_has_fec(const unsigned char *p, Py_ssize_t n) {
    if (n < 2)
        return 0;
    int config = p[0] >> 3, stereo = (p[0] >> 2) & 1, code = p[0] & 3;
    if (config >= 16 || code > 1)
        return 0;
    int frames = config < 12 && (config & 3) ? (config & 3) : 1;
    int mid = (p[1] >> (7 - frames)) & 1;
    int side = stereo ? (p[1] >> (6 - 2 * frames)) & 1 : 0;
    return mid || side;
}
