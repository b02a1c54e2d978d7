use std::fmt;

const MAX: usize = 8;

pub struct Stack {
    items: Vec<i32>,
}

impl Stack {
    pub fn new() -> Self {
        Stack { items: Vec::new() }
    }

    pub fn push(&mut self, v: i32) {
        self.items.push(v);
    }
}

trait Shape {
    fn area(&self) -> f64;
}

fn main() {
    let mut s = Stack::new();
    s.push(1);
    println!("{}", MAX);
}
