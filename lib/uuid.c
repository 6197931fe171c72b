/* UUIDs: validation into canonical lower-case text, and random (version 4) generation. */
#include "uuid.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static bool is_dash_position(int i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

bool cs_uuid_parse(const char *s, char out[37])
{
    char buf[37];

    if (!s)
        return false;
    /* A NUL before position 36 fails the character test, so a short s is never overread. */
    for (int i = 0; i < 36; i++) {
        char ch = s[i];

        if (is_dash_position(i) ? ch != '-'
                                : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                                    (ch >= 'A' && ch <= 'F')))
            return false;
        buf[i] = (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
    }
    if (s[36] != '\0')
        return false;
    buf[36] = '\0';
    if (out)
        memcpy(out, buf, sizeof(buf));
    return true;
}

/* Fills buf from getrandom(2), or from /dev/urandom on kernels without it. */
static int random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    ssize_t r;
    int fd;

    while (got < n) {
        r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        got += (size_t)r;
    }
    if (got == n)
        return 0;
    if (errno != ENOSYS)
        return CS_ERR;
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CS_ERR;
    for (got = 0; got < n; got += (size_t)r) {
        r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            r = 0;
        else if (r <= 0)
            break;
    }
    close(fd);
    return got == n ? 0 : CS_ERR;
}

int cs_uuid_generate(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int pos = 0;

    if (random_bytes(b, sizeof(b)) != 0)
        return CS_ERR;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (is_dash_position(pos))
            out[pos++] = '-';
        out[pos++] = hex[b[i] >> 4];
        out[pos++] = hex[b[i] & 0x0f];
    }
    out[pos] = '\0';
    return 0;
}
