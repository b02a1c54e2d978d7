#include <stdio.h>

#define MAX_ITEMS 16

struct point {
  int x, y;
};

typedef enum { RED, GREEN } color;

static int counter = 0;

static int
add(int a, int b)
{
  return a + b;
}

int main(void) {
  struct point p = {1, 2};
  printf("%d\n", add(p.x, p.y));
  return 0;
}
