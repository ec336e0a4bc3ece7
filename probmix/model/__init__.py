"""What is fitted: the Gaussian-mixture declaration, its covariance families and priors,
and the checks and introspection of custom Pyro mixture programs."""
