"""asv benchmarks of fastdnn: kernels, training, inference and start-up (see ``benchmarks/asv.conf.json``)."""
