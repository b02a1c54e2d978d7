package main

import "fmt"

const Limit = 3

type Stack struct {
	items []int
}

// Push adds an item.
func (s *Stack) Push(v int) {
	s.items = append(s.items, v)
}

func main() {
	s := &Stack{}
	s.Push(Limit)
	fmt.Println(len(s.items))
}
