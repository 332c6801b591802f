"""The processing element: its operand registers, one multiply-accumulate and the accumulator.

Two arithmetic variants, both one MAC per cycle:

- `int`: an integer stand-in of the same widths — signed 16-bit × 16-bit, 32-bit wrap-around
  accumulator. Cheap to simulate; the cycle-equality sweeps run on it (timing does not depend on
  the arithmetic).
- `bf16`: bf16 × bf16 → fp32 product (exact: two 8-bit significands fit fp32's 24) added into an
  fp32 accumulator, round to nearest even. Subnormal inputs and results are flushed to zero and
  there is no inf/NaN handling (exponents beyond the range are not clamped): the datapath of a
  training MAC, not an IEEE-complete unit. Synthesis prices this one (docs/rtl.md).

The PE registers its inputs (stream value, own operand, valid, clear) and accumulates one cycle
later: a multiply-accumulate pipeline of the two operand registers and the accumulator that the
component table prices per PE (arch/area.py: accumulator and two operand registers). `clear`
marks the first cycle of a new item: the accumulator restarts from zero whether or not that cycle
multiplies.
"""


from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.wiring import Component, In, Out

VALUE_BITS = 16  # bf16 (or int16) operands
ACC_BITS = 32  # fp32 (or int32) accumulator
PE_KINDS = ("int", "bf16")


class PE(Component):
    """One PE: `a` (the row's broadcast stream value) × `b` (its own operand) into `acc`."""

    a: In(VALUE_BITS)
    b: In(VALUE_BITS)
    valid: In(1)  # multiply this cycle's operands (else the PE idles: zero-gated)
    clear: In(1)  # the first cycle of an item: restart the accumulator
    acc: Out(ACC_BITS)

    def __init__(self, kind: str = "int"):
        if kind not in PE_KINDS:
            raise ValueError(f"PE kind {kind!r}: expected one of {PE_KINDS}")
        self.kind = kind
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        ra, rb = Signal(VALUE_BITS), Signal(VALUE_BITS)
        rvalid, rclear = Signal(), Signal()
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), rvalid.eq(self.valid), rclear.eq(self.clear)]
        acc = Signal(ACC_BITS)
        base = Mux(rclear, 0, acc)
        if self.kind == "int":
            product = ra.as_signed() * rb.as_signed()
            m.d.sync += acc.eq(Mux(rvalid, base + product, base)[:ACC_BITS])
        else:
            m.submodules.mul = mul = Bf16Multiply()
            m.submodules.add = add = Fp32Add()
            m.d.comb += [mul.a.eq(ra), mul.b.eq(rb), add.a.eq(base), add.b.eq(Mux(rvalid, mul.product, 0))]
            m.d.sync += acc.eq(add.sum)
        m.d.comb += self.acc.eq(acc)
        return m


class Bf16Multiply(Component):
    """bf16 × bf16 as an fp32 (exact); a zero or subnormal input gives +0 (sign kept)."""

    a: In(16)
    b: In(16)
    product: Out(32)

    def elaborate(self, platform) -> Module:
        m = Module()
        sa, ea, fa = self.a[15], self.a[7:15], self.a[0:7]
        sb, eb, fb = self.b[15], self.b[7:15], self.b[0:7]
        sig = Signal(16)
        m.d.comb += sig.eq(Cat(fa, Const(1, 1)) * Cat(fb, Const(1, 1)))  # [2^14, 2^16)
        exp = Signal(signed(11))
        frac = Signal(23)
        with m.If(sig[15]):
            m.d.comb += [exp.eq(ea + eb - 126), frac.eq(Cat(Const(0, 8), sig[0:15]))]
        with m.Else():
            m.d.comb += [exp.eq(ea + eb - 127), frac.eq(Cat(Const(0, 9), sig[0:14]))]
        zero = (ea == 0) | (eb == 0) | (exp <= 0)
        m.d.comb += self.product.eq(Mux(zero, Cat(Const(0, 31), sa ^ sb), Cat(frac, exp[0:8], sa ^ sb)))
        return m


class Fp32Add(Component):
    """fp32 + fp32, round to nearest even, subnormals flushed to zero (in and out)."""

    a: In(32)
    b: In(32)
    sum: Out(32)

    def elaborate(self, platform) -> Module:
        m = Module()
        # order by magnitude: x is the larger
        mag_a, mag_b = self.a[0:31], self.b[0:31]
        swap = mag_b > mag_a
        x, y = Mux(swap, self.b, self.a), Mux(swap, self.a, self.b)
        sx, ex, fx = x[31], x[23:31], x[0:23]
        sy, ey, fy = y[31], y[23:31], y[0:23]
        mx = Mux(ex == 0, 0, Cat(fx, Const(1, 1)))  # 24-bit significands, subnormals as zero
        my = Mux(ey == 0, 0, Cat(fy, Const(1, 1)))
        ex_eff = Mux(ex == 0, 0, ex)
        d = Signal(9)
        m.d.comb += d.eq(ex_eff - Mux(ey == 0, ex_eff, ey))
        # y's significand with three bits below (guard, round, sticky), shifted right by d
        y_ext = Signal(27)
        m.d.comb += y_ext.eq(Cat(Const(0, 3), my))
        shift = Mux(d > 27, 27, d)[0:5]
        shifted = Signal(27)
        lost = Signal()
        m.d.comb += [
            shifted.eq(y_ext >> shift),
            lost.eq((y_ext & ((Const(1, 28) << shift) - 1)[0:27]) != 0),
        ]
        y_al = Signal(27)
        m.d.comb += y_al.eq(shifted | lost)
        x_ext = Cat(Const(0, 3), mx)
        raw = Signal(28)
        with m.If(sx == sy):
            m.d.comb += raw.eq(x_ext + y_al)
        with m.Else():
            m.d.comb += raw.eq(x_ext - y_al)
        # normalise: the leading one to bit 26
        lz = Signal(5)
        for i in range(27):  # the highest set bit of raw[0:27] wins (later assignments override)
            with m.If(raw[i]):
                m.d.comb += lz.eq(26 - i)
        norm = Signal(27)
        exp = Signal(signed(11))
        with m.If(raw[27]):  # carry out of the addition: one right shift, the lost bit is sticky
            m.d.comb += [norm.eq(Cat(raw[1] | raw[0], raw[2:28])), exp.eq(ex_eff + 1)]
        with m.Else():
            m.d.comb += [norm.eq(raw[0:27] << lz), exp.eq(ex_eff - lz)]
        guard, rnd, sticky = norm[2], norm[1], norm[0]
        sig = norm[3:27]  # 24 bits, the hidden one at the top
        up = guard & (rnd | sticky | sig[0])
        rounded = Signal(25)
        m.d.comb += rounded.eq(sig + up)
        frac = Signal(23)
        exp_r = Signal(signed(11))
        with m.If(rounded[24]):
            m.d.comb += [frac.eq(rounded[1:24]), exp_r.eq(exp + 1)]
        with m.Else():
            m.d.comb += [frac.eq(rounded[0:23]), exp_r.eq(exp)]
        zero = (raw == 0) | (exp_r <= 0)
        # an exact zero difference is +0 (round to nearest); otherwise the larger operand's sign
        sign = Mux(raw == 0, sx & sy, sx)
        m.d.comb += self.sum.eq(Mux(zero, Cat(Const(0, 31), sign), Cat(frac, exp_r[0:8], sx)))
        return m
