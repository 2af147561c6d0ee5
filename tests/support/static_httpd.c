/* A tiny static HTTP server for container tests: listens on $PORT (default 8080), answers
 * every request with "hello from kaisar <GREETING>", logs each request line to stdout. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  const char* port_text = getenv("PORT");
  const char* greeting = getenv("GREETING");
  int port = port_text ? atoi(port_text) : 8080;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  if (bind(s, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(s, 64) != 0) {
    perror("bind");
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char buf[4096];
    ssize_t n = read(c, buf, sizeof buf - 1);
    if (n > 0) {
      buf[n] = 0;
      char* eol = strpbrk(buf, "\r\n");
      if (eol) *eol = 0;
      printf("request: %s\n", buf);
      fflush(stdout);
    }
    char body[256];
    int len = snprintf(body, sizeof body, "hello from kaisar %s\n", greeting ? greeting : "");
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len);
    if (write(c, head, (size_t)hl) < 0 || write(c, body, (size_t)len) < 0) perror("write");
    close(c);
  }
}
