/* The hello protocol in C: one thread, epoll, level-triggered, the reference for
 * server CPU per reply and memory per idle connection in bench/run.
 *
 * An idle connection costs the kernel socket and a 16-byte slot here: a partial
 * line is kept in a malloc'd buffer only while one is held, and unsent output
 * only while the client is not reading (then its reads pause, so output stays
 * bounded by one read's replies). Lines over MAX_LINE close the connection.
 *
 * Build: gcc -O2 -o epoll_server bench/epoll_server.c
 * Usage: epoll_server HOST PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINE 65536
#define READ_BUF 65536

struct conn {
    char *held; /* partial line or unsent output, NULL when none */
    unsigned len;
    unsigned char out_pending; /* held is unsent output, not a partial line */
};

static struct conn *conns;
static int nconns;
static char inbuf[READ_BUF];
static char outbuf[READ_BUF * 2 + 64];
static int ep;

static void drop(int fd) {
    free(conns[fd].held);
    conns[fd].held = NULL;
    conns[fd].len = 0;
    conns[fd].out_pending = 0;
    close(fd); /* also removes it from the epoll set */
}

/* Append the reply for one line to out; return 1 if it was the quit word. */
static int reply(const char *line, size_t n, char *out, size_t *olen) {
    if (n && line[n - 1] == '\r') n--;
    if (n == 4 && memcmp(line, "exit", 4) == 0) return 1;
    memcpy(out + *olen, "Hello, ", 7);
    memcpy(out + *olen + 7, line, n);
    memcpy(out + *olen + 7 + n, "!\n", 2);
    *olen += n + 9;
    return 0;
}

/* Write out[0..len); keep the rest and wait for EPOLLOUT. Returns -1 to close. */
static int send_out(int fd, const char *out, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, out + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    if (off == len) return 0;
    struct conn *c = &conns[fd];
    free(c->held);
    c->held = malloc(len - off);
    if (!c->held) return -1;
    memcpy(c->held, out + off, len - off);
    c->len = (unsigned)(len - off);
    c->out_pending = 1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void on_readable(int fd) {
    struct conn *c = &conns[fd];
    ssize_t n = read(fd, inbuf, sizeof inbuf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* EOF or error: a final line without newline is dropped here */
        drop(fd);
        return;
    }
    size_t olen = 0, start = 0;
    int quit = 0;
    for (size_t i = 0; i < (size_t)n && !quit; i++) {
        if (inbuf[i] != '\n') continue;
        if (c->held) { /* the line began in an earlier read */
            size_t total = c->len + (i - start);
            if (total > MAX_LINE) { drop(fd); return; }
            char *joined = realloc(c->held, total ? total : 1);
            if (!joined) { drop(fd); return; }
            memcpy(joined + c->len, inbuf + start, i - start);
            quit = reply(joined, total, outbuf, &olen);
            free(joined);
            c->held = NULL;
            c->len = 0;
        } else {
            quit = reply(inbuf + start, i - start, outbuf, &olen);
        }
        start = i + 1;
        /* Flush before the buffer could overflow with one more maximal reply. */
        if (olen > READ_BUF) {
            if (send_out(fd, outbuf, olen) < 0) { drop(fd); return; }
            olen = 0;
            if (c->out_pending) return; /* rest of this read is lost: client not reading */
        }
    }
    if (!quit && start < (size_t)n) { /* keep the partial line */
        size_t rest = (size_t)n - start;
        if (c->len + rest > MAX_LINE) { drop(fd); return; }
        char *grown = realloc(c->held, c->len + rest);
        if (!grown) { drop(fd); return; }
        memcpy(grown + c->len, inbuf + start, rest);
        c->held = grown;
        c->len += (unsigned)rest;
    }
    if (olen && send_out(fd, outbuf, olen) < 0) { drop(fd); return; }
    if (quit) drop(fd);
}

static void on_writable(int fd) {
    struct conn *c = &conns[fd];
    char *out = c->held;
    size_t len = c->len;
    c->held = NULL;
    c->len = 0;
    c->out_pending = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    int r = send_out(fd, out, len);
    free(out);
    if (r < 0) drop(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    nconns = (int)rl.rlim_cur;
    conns = calloc((size_t)nconns, sizeof *conns);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    if (!conns || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || bind(ls, (struct sockaddr *)&sa, sizeof sa) ||
        listen(ls, 1024)) {
        perror("epoll_server: listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                for (;;) { /* accept everything queued */
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break; /* EAGAIN, or EMFILE: retried on the next wakeup */
                    if (cfd >= nconns) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (write(cfd, "Welcome!\n", 9) != 9) { close(cfd); continue; }
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
            } else if (events[i].events & EPOLLOUT) {
                on_writable(fd);
            } else {
                on_readable(fd);
            }
        }
    }
}
