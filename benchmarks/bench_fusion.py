"""Does fusing elementwise chains pay on this machine? numpy (one ufunc per op, written
with ``out=`` into preallocated arrays, as the numpy backend does) against numexpr
(``ne.evaluate`` of the whole chain, one pass) and numba (one ``@njit`` loop, compile
time measured) on the Adam update and on bias + tanh, at the sizes of the benchmark
models, float32, one thread, thread CPU time, best of 5.

Neither package is a catgrad dependency; to rerun: ``pip install numexpr numba`` and
``python benchmarks/bench_fusion.py [fm]`` (``fm``: numba with ``fastmath=True``).
Results and the decision are in docs/benchmarks.md.
"""

import os
import sys

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[v] = "1"
import time  # noqa: E402

import numpy as np  # noqa: E402

try:
    import numba
    import numexpr as ne
except ImportError as e:
    sys.exit(f"{e}: this measurement needs `pip install numexpr numba` (neither is a catgrad dependency)")
FM = len(sys.argv) > 1
ne.set_num_threads(1)
def best(f, n):
    b=1e9
    for _ in range(5):
        t=time.thread_time()
        for _ in range(n): f()
        b=min(b,(time.thread_time()-t)/n)
    return b*1e6
rng=np.random.default_rng(0)
b1,b2,lr,eps=np.float32(0.9),np.float32(0.999),np.float32(1e-3),np.float32(1e-8)
c1,c2=np.float32(1/(1-0.9**5)), np.float32(1/np.sqrt(1-0.999**5))
for shape in [(150,20),(64,256),(256,256),(256,10)]:
    p,g,m,v=(rng.normal(size=shape).astype(np.float32) for _ in range(4)); v=abs(v)
    m2, v2, p2, t1 = (np.empty_like(p) for _ in range(4))
    def npy():  # numpy with out= buffers: one pass per op
        np.multiply(b1,m,out=m2); np.multiply(1-b1,g,out=t1); np.add(m2,t1,out=m2)
        np.multiply(g,g,out=t1); np.multiply(1-b2,t1,out=t1); np.multiply(b2,v,out=v2); np.add(v2,t1,out=v2)
        np.sqrt(v2,out=t1); np.multiply(t1,c2,out=t1); np.add(t1,eps,out=t1); np.divide(m2,t1,out=t1); np.multiply(t1,lr*c1,out=t1); np.subtract(p,t1,out=p2)
    def nex():
        ne.evaluate("b1*m+(1-b1)*g", local_dict=dict(b1=b1,m=m,g=g), out=m2)
        ne.evaluate("b2*v+(1-b2)*g*g", local_dict=dict(b2=b2,v=v,g=g), out=v2)
        ne.evaluate("p-lrc1*m2/(sqrt(v2)*c2+eps)", local_dict=dict(p=p,lrc1=lr*c1,m2=m2,v2=v2,c2=c2,eps=eps), out=p2)
    @numba.njit(fastmath=FM)
    def nb(p,g,m,v,m2,v2,p2,b1,b2,lrc1,c2,eps):
        pf,gf,mf,vf,m2f,v2f,p2f=p.ravel(),g.ravel(),m.ravel(),v.ravel(),m2.ravel(),v2.ravel(),p2.ravel()
        for i in range(pf.size):
            a=b1*mf[i]+(1-b1)*gf[i]; m2f[i]=a
            w=b2*vf[i]+(1-b2)*gf[i]*gf[i]; v2f[i]=w
            p2f[i]=pf[i]-lrc1*a/(np.sqrt(w)*c2+eps)
    t0=time.perf_counter(); nb(p,g,m,v,m2,v2,p2,b1,b2,lr*c1,c2,eps); tc=time.perf_counter()-t0
    n=max(50,200000//p.size)
    print(f"adam {shape}: numpy {best(npy,n):7.1f}us numexpr {best(nex,n):7.1f}us numba {best(lambda: nb(p,g,m,v,m2,v2,p2,b1,b2,lr*c1,c2,eps),n):7.1f}us (numba compile {tc*1e3:.0f} ms)")
for shape in [(150,20),(150,3),(128,256)]:
    z,bb=rng.normal(size=shape).astype(np.float32), rng.normal(size=shape[1]).astype(np.float32)
    o=np.empty_like(z)
    def npy2(): np.add(z,bb,out=o); np.tanh(o,out=o)
    def nex2(): ne.evaluate("tanh(z+bb)",local_dict=dict(z=z,bb=bb),out=o)
    @numba.njit
    def nb2(z,bb,o):
        n,k=z.shape
        for i in range(n):
            for j in range(k): o[i,j]=np.tanh(z[i,j]+bb[j])
    t0=time.perf_counter(); nb2(z,bb,o); tc=time.perf_counter()-t0
    n=max(50,200000//z.size)
    print(f"bias+tanh {shape}: numpy {best(npy2,n):7.1f}us numexpr {best(nex2,n):7.1f}us numba {best(lambda: nb2(z,bb,o),n):7.1f}us (numba compile {tc*1e3:.0f} ms)")
