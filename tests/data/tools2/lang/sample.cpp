#include <string>

namespace geo {

class Shape {
 public:
  virtual double area() const = 0;
};

class Circle : public Shape {
 public:
  double area() const override { return 3.14 * r * r; }
  double r = 1.0;
};

}  // namespace geo

double total(const geo::Shape &s) { return s.area(); }
