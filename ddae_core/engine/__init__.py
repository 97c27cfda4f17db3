"""The engine: networks, diffusion, data, training and evaluation. It imports neither the job system nor db."""
