package kernels

import (
	"os"
	"strings"
	"testing"
)

func TestTierSwitching(t *testing.T) {
	best := CurrentTier()
	ts := Tiers()
	// CAFEQ_KERNELS may name a tier below the best
	if ts[0] != TierGeneric || (os.Getenv("CAFEQ_KERNELS") == "" && ts[len(ts)-1] != best) {
		t.Fatalf("Tiers() = %v, current %v: want generic first and the current (best) tier last", ts, best)
	}
	for _, tier := range ts {
		restore, err := ForceTier(tier)
		if err != nil {
			t.Fatal(err)
		}
		if CurrentTier() != tier {
			t.Fatalf("ForceTier(%v): current %v", tier, CurrentTier())
		}
		restore()
		if CurrentTier() != best {
			t.Fatalf("restore after %v: current %v, want %v", tier, CurrentTier(), best)
		}
	}
	if _, err := ForceTier(Tier(200)); err == nil {
		t.Fatal("ForceTier(200) succeeded")
	}
	func() {
		defer DisableAVX2()()
		if c := CurrentTier(); c == TierAVX2 || c == TierAVXVNNI || c == TierAVX512 {
			t.Fatalf("DisableAVX2: still on %v", CurrentTier())
		}
	}()
	func() {
		defer DisableAVX512()()
		if CurrentTier() == TierAVX512 {
			t.Fatal("DisableAVX512: still on avx512")
		}
		// the best tier below AVX-512 that this CPU has
		if n := len(ts); best == TierAVX512 && CurrentTier() != ts[n-2] {
			t.Fatalf("DisableAVX512: on %v, want %v", CurrentTier(), ts[n-2])
		}
	}()
	if CurrentTier() != best {
		t.Fatalf("after Disable*: current %v, want %v", CurrentTier(), best)
	}
}

func TestCPUFeatures(t *testing.T) {
	s := CPUFeatures()
	if !strings.Contains(s, "tier="+CurrentTier().String()) {
		t.Fatalf("CPUFeatures() = %q lacks the tier", s)
	}
	t.Log(s)
}
