"""The geometry of a score field at one point, route by route.

``lowrank``: the paper's measures without forming the D x D Jacobian (matrix-free, from Jacobian-vector and
vector-Jacobian products of the score model), for images too large for the exact route (`jacobian` +
`spectra`).
"""
