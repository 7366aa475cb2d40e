package compat

import "testing"

// FuzzCheck feeds arbitrary schema pairs to the parser and the checker:
// neither may panic or loop, a schema always reads its own data, and a
// level check agrees with the pairwise checks it is made of.
func FuzzCheck(f *testing.F) {
	seeds := []string{cSchema1, cSchema2, cSchema3, cSchema4, cSchema6, cSchema7, aEnum1AB, aEnum1ABDef, aLinkedList, aLinkedListL, aIntLongUnion, aFixed4, aDecimal42, aMapOfUnion1, aRecInUnion2, aNsRecord1}
	for i, a := range seeds {
		f.Add(a, seeds[(i+3)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, err := Parse(a, nil)
		if err != nil {
			return
		}
		if inc := checkPair(t, sa, sa); len(inc) != 0 {
			t.Fatalf("schema cannot read itself: %s: %v", a, inc)
		}
		sb, err := Parse(b, nil)
		if err != nil {
			return
		}
		ab := len(checkPair(t, sa, sb)) == 0
		ba := len(checkPair(t, sb, sa)) == 0
		full := len(checkLevel(t, "FULL", sa, []Schema{sb})) == 0
		if full != (ab && ba) {
			t.Fatalf("FULL = %v but backward %v, forward %v", full, ab, ba)
		}
	})
}
