package runtime

type sampler struct{}

func newSampler(vocab int) sampler { return sampler{} }
