package demo;

import java.util.List;

public class Sample {
    private int count;

    public Sample(int count) {
        this.count = count;
    }

    public int twice() {
        return helper(count) * 2;
    }

    static int helper(int x) {
        return x;
    }
}

interface Shape {
    double area();
}
