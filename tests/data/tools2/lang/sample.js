// A small module.
class Counter {
  constructor() {
    this.n = 0;
  }

  increment() {
    this.n += 1;
    return this.n;
  }
}

function makeCounter() {
  return new Counter();
}

const double = (x) => x * 2;

makeCounter().increment();
require('fs');
