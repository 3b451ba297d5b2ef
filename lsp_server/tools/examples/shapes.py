"""A small geometry module: the file `codellama-lsp demo` completes and documents."""

import math
from dataclasses import dataclass


@dataclass
class Point:
    x: float
    y: float

    def distance_to(self, other: "Point") -> float:
        dx = self.x - other.x
        dy = self.y - other.y
        return math.sqrt(dx * dx + dy * dy)


def polygon_perimeter(points: list[Point]) -> float:
    total = 0.0
    for i in range(len(points)):
        total += points[i].distance_to(points[(i + 1) % len(points)])
    return total


def polygon_area(points: list[Point]) -> float:
    area = 0.0
    for i in range(len(points)):
        j = (i + 1) % len(points)
        area += points[i].x * points[j].y - points[j].x * points[i].y
    return abs(area) / 2.0


def scale_points(points: list[Point], factor: float) -> list[Point]:
    result = []
    for point in points:
        result.append(Point(point.x * factor, point.y * factor))
    return result


if __name__ == "__main__":
    square = [Point(0, 0), Point(1, 0), Point(1, 1), Point(0, 1)]
    print(polygon_perimeter(square))
    print(polygon_area(square))
