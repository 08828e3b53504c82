"""Training from scratch: data from the pixel cache, Lightning for the loop, our models.

`winnow.training.train` is the library entry point of `winnow train`; importing this
package does not import Lightning (that happens when a run starts).
"""
