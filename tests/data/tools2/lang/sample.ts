interface Named {
  name: string;
}

type Id = number;

enum Color { Red, Green }

class Person implements Named {
  constructor(public name: string) {}
  hello(other: Named): string {
    return format(this.name, other.name);
  }
}

function format(a: string, b: string): string {
  return `${a} greets ${b}`;
}
