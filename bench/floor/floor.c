/*
 * floor: the kernel's floor for a UDP DNS responder, to measure servers
 * against (bench/peers.sh). It does no DNS work: every query with one
 * question is answered with that question, as received, and one fixed A
 * record (a compressed pointer to the question name, TTL 30, 127.0.10.1).
 * One SO_REUSEPORT socket per CPU it may run on (or per argv[2]), one
 * thread per socket, recvmmsg/sendmmsg in batches of 32. Loopback only.
 *
 * Usage: floor PORT [SOCKETS]      Build: gcc -O2 -pthread -o floor floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define BUFSZ 4096

static const unsigned char answer[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 10, 1};

/* reply turns the query in p (n bytes) into the answer in place: its length, or 0 to drop it */
static size_t reply(unsigned char *p, size_t n) {
	size_t off = 12;
	if (n < 12 || p[4] != 0 || p[5] != 1 || (p[2] & 0x80))
		return 0;
	while (off < n && p[off] != 0) {
		if (p[off] & 0xc0)
			return 0;
		off += p[off] + 1;
	}
	off += 5; /* the root label, type, class */
	if (off > n || off + sizeof answer > BUFSZ)
		return 0;
	p[2] = (p[2] & 0x79) | 0x84; /* QR, AA; opcode and RD as sent, TC off */
	p[3] = 0;                    /* RA off, rcode NOERROR */
	memcpy(p + 6, "\0\1\0\0\0\0", 6); /* ancount 1, nscount 0, arcount 0 */
	memcpy(p + off, answer, sizeof answer);
	return off + sizeof answer;
}

static void *serve(void *arg) {
	int fd = (int)(long)arg;
	unsigned char buf[BATCH][BUFSZ];
	struct sockaddr_in from[BATCH];
	struct iovec in[BATCH], out[BATCH];
	struct mmsghdr rx[BATCH], tx[BATCH];
	memset(rx, 0, sizeof rx);
	memset(tx, 0, sizeof tx);
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			in[i] = (struct iovec){buf[i], BUFSZ};
			rx[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &in[i], .msg_iovlen = 1};
		}
		int n = recvmmsg(fd, rx, BATCH, MSG_WAITFORONE, NULL), k = 0;
		for (int i = 0; i < n; i++) {
			size_t len = reply(buf[i], rx[i].msg_len);
			if (len == 0)
				continue;
			out[k] = (struct iovec){buf[i], len};
			tx[k].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = rx[i].msg_hdr.msg_namelen, .msg_iov = &out[k], .msg_iovlen = 1};
			k++;
		}
		for (int sent = 0, r; sent < k; sent += r)
			if ((r = sendmmsg(fd, tx + sent, k - sent, 0)) <= 0)
				break; /* a full socket buffer drops the rest, as a server would */
	}
	return NULL;
}

int main(int argc, char **argv) {
	cpu_set_t cpus;
	int port = argc > 1 ? atoi(argv[1]) : 0, nsock = argc > 2 ? atoi(argv[2]) : 0, one = 1;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: floor PORT [SOCKETS]\n");
		return 2;
	}
	if (nsock <= 0)
		nsock = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	pthread_t t;
	for (int i = 0; i < nsock; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
			perror("floor: socket");
			return 2;
		}
		if (pthread_create(&t, NULL, serve, (void *)(long)fd) != 0) {
			perror("floor: thread");
			return 2;
		}
	}
	printf("floor: ready on 127.0.0.1:%d, %d sockets\n", port, nsock);
	fflush(stdout);
	pthread_join(t, NULL);
	return 0;
}
