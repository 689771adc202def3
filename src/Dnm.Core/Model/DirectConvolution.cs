using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Dnm.Core.Model;

/// <summary>
/// Direct (no im2col) stride-1 'same' convolutions on float32 NCHW data, for the few channels this
/// model has. libtorch without oneDNN unfolds every input into a matrix k² times its size and then
/// multiplies by a weight matrix only Cout (≤ 10) rows tall: copying, not arithmetic, dominated
/// the step. Here each output row is accumulated in registers from a zero-padded copy of one
/// sample (a few tens of KB, cache-resident), 16 columns per vector, 4 output channels at a time.
/// All three passes (output, input gradient, weight gradient) are sums of the same products as
/// torch's; only the order of the additions differs. The kernels are written once over
/// <see cref="IFloatVector{TSelf}"/> and run at the CPU's native width: 16 floats with AVX-512, 8
/// with AVX2 (where a Vector512 is a software pair of Vector256 whose 16 accumulators do not fit
/// the 16 registers).
/// </summary>
internal static unsafe class DirectConvolution
{
    private const int Block = 4;    // output channels per register block

    /// <summary>Floats per vector on this CPU: 16 where AVX-512 runs natively, 8 otherwise.</summary>
    public static int NativeLanes => Vector512.IsHardwareAccelerated ? Float512.Lanes : Float256.Lanes;

    /// <summary>
    /// Shapes of one call: n samples, cin → cout channels, h×w images, k×k kernel (k odd), and the
    /// vector width it runs at (<see cref="NativeLanes"/> unless a test picks the other one).
    /// </summary>
    internal readonly record struct Geometry(int N, int Cin, int Cout, int H, int W, int K)
    {
        public int Lanes { get; init; } = NativeLanes;
        public int Pad => K / 2;
        /// <summary>Vector segments per row, even so that they go in pairs.</summary>
        public int Segments => ((W + Lanes - 1) / Lanes + 1) / 2 * 2;
        public int RowLength => Segments * Lanes;
        public int PaddedWidth => RowLength + K - 1;
        public int PaddedHeight => H + K - 1;
        public int PaddedPlane => PaddedHeight * PaddedWidth;
        public int Blocks => (Cout + Block - 1) / Block;
        public int Plane => H * W;
    }

    /// <summary>y = conv(x, weight) + bias; weight is cout×cin×k×k, bias cout values or empty.</summary>
    public static void Forward(Geometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y)
    {
        switch (g.Lanes)
        {
            case Float512.Lanes: Forward<Float512>(g, x, weight, bias, y); break;
            case Float256.Lanes: Forward<Float256>(g, x, weight, bias, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(g), g.Lanes, "vector width must be 8 or 16 floats");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Forward<TVec>(Geometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y)
        where TVec : unmanaged, IFloatVector<TVec>
    {
        var packed = ArrayPool<float>.Shared.Rent(g.Blocks * g.Cin * g.K * g.K * Block);
        var padded = ArrayPool<float>.Shared.Rent(g.Cin * g.PaddedPlane);
        var row = ArrayPool<float>.Shared.Rent(Block * g.RowLength);
        try
        {
            PackWeights(g, weight, packed);
            Array.Clear(padded, 0, g.Cin * g.PaddedPlane);
            var offsets = TapOffsets(g);
            fixed (float* xp = x, yp = y, wp = packed, pp = padded, rp = row, bp = bias)
            fixed (int* op = offsets)
            {
                for (int b = 0; b < g.N; b++)
                {
                    PadSample(g, xp + (long)b * g.Cin * g.Plane, pp, g.Cin);
                    for (int blk = 0; blk < g.Blocks; blk++)
                        for (int r = 0; r < g.H; r++)
                            ForwardRow<TVec>(g, pp, wp, op, bias.IsEmpty ? null : bp, blk, r, rp, yp + (long)b * g.Cout * g.Plane);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packed);
            ArrayPool<float>.Shared.Return(padded);
            ArrayPool<float>.Shared.Return(row);
        }
    }

    /// <summary>
    /// dL/dx of a 'same' convolution: itself a 'same' convolution of dL/dy with the kernel flipped in
    /// both spatial axes and its channel axes swapped (cout becomes the input side).
    /// </summary>
    public static void GradInput(Geometry g, ReadOnlySpan<float> gradOutput, ReadOnlySpan<float> weight, Span<float> gradInput)
    {
        var kk = g.K * g.K;
        var flipped = ArrayPool<float>.Shared.Rent(g.Cin * g.Cout * kk);
        try
        {
            for (int co = 0; co < g.Cout; co++)
                for (int ci = 0; ci < g.Cin; ci++)
                    for (int t = 0; t < kk; t++)
                        flipped[(ci * g.Cout + co) * kk + (kk - 1 - t)] = weight[(co * g.Cin + ci) * kk + t];
            Forward(g with { Cin = g.Cout, Cout = g.Cin }, gradOutput, flipped.AsSpan(0, g.Cin * g.Cout * kk), ReadOnlySpan<float>.Empty, gradInput);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(flipped);
        }
    }

    /// <summary>dL/dweight (cout×cin×k×k) and dL/dbias (cout), summed over the batch.</summary>
    public static void GradWeight(Geometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> gradOutput, Span<float> gradWeight, Span<float> gradBias)
    {
        switch (g.Lanes)
        {
            case Float512.Lanes: GradWeight<Float512>(g, x, gradOutput, gradWeight, gradBias); break;
            case Float256.Lanes: GradWeight<Float256>(g, x, gradOutput, gradWeight, gradBias); break;
            default: throw new ArgumentOutOfRangeException(nameof(g), g.Lanes, "vector width must be 8 or 16 floats");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradWeight<TVec>(Geometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> gradOutput, Span<float> gradWeight, Span<float> gradBias)
        where TVec : unmanaged, IFloatVector<TVec>
    {
        var kk = g.K * g.K;
        var accumulatorCount = g.Blocks * Block * g.Cin * kk;
        var accumulators = ArrayPool<TVec>.Shared.Rent(accumulatorCount);
        // + Lanes: the unpaired last tap of a row reads (and discards) one column past the last plane.
        var padded = ArrayPool<float>.Shared.Rent(g.Cin * g.PaddedPlane + g.Lanes);
        var rows = ArrayPool<float>.Shared.Rent(g.Blocks * Block * g.H * g.RowLength);
        try
        {
            Array.Clear(accumulators, 0, accumulatorCount);
            Array.Clear(padded, 0, g.Cin * g.PaddedPlane + g.Lanes);
            Array.Clear(rows, 0, g.Blocks * Block * g.H * g.RowLength);
            gradBias.Clear();
            fixed (float* xp = x, dyp = gradOutput, pp = padded, rp = rows)
            fixed (TVec* ap = accumulators)
            {
                for (int b = 0; b < g.N; b++)
                {
                    PadSample(g, xp + (long)b * g.Cin * g.Plane, pp, g.Cin);
                    // dL/dy rows at vector width; the columns past W stay zero, so they add nothing.
                    var dy = dyp + (long)b * g.Cout * g.Plane;
                    for (int co = 0; co < g.Cout; co++)
                        for (int r = 0; r < g.H; r++)
                        {
                            var src = new ReadOnlySpan<float>(dy + (co * g.H + r) * g.W, g.W);
                            src.CopyTo(new Span<float>(rp + (co * g.H + r) * g.RowLength, g.W));
                            float s = 0;
                            foreach (var v in src) s += v;
                            gradBias[co] += s;
                        }
                    for (int blk = 0; blk < g.Blocks; blk++)
                        for (int ci = 0; ci < g.Cin; ci++)
                            for (int ky = 0; ky < g.K; ky++)
                                for (int kx = 0; kx < g.K; kx += 2)
                                {
                                    var t = ky * g.K + kx;
                                    var acc = ap + ((blk * g.Cin + ci) * kk + t) * Block;
                                    // The last kx of an odd kernel goes alone (its pair reads one column further, discarded).
                                    WeightTaps<TVec>(g, pp, rp, blk, ci, ky, kx, kx + 1 < g.K, acc, acc + Block);
                                }
                }
            }
            for (int co = 0; co < g.Cout; co++)
                for (int ci = 0; ci < g.Cin; ci++)
                    for (int t = 0; t < kk; t++)
                        gradWeight[(co * g.Cin + ci) * kk + t] =
                            accumulators[(((co / Block) * g.Cin + ci) * kk + t) * Block + co % Block].Sum();
        }
        finally
        {
            ArrayPool<TVec>.Shared.Return(accumulators);
            ArrayPool<float>.Shared.Return(padded);
            ArrayPool<float>.Shared.Return(rows);
        }
    }

    /// <summary>Weights as [block][ci][ky][kx][4 output channels], zero for channels past cout.</summary>
    private static void PackWeights(Geometry g, ReadOnlySpan<float> weight, float[] packed)
    {
        var kk = g.K * g.K;
        Array.Clear(packed, 0, g.Blocks * g.Cin * kk * Block);
        for (int co = 0; co < g.Cout; co++)
            for (int ci = 0; ci < g.Cin; ci++)
                for (int t = 0; t < kk; t++)
                    packed[(((co / Block) * g.Cin + ci) * kk + t) * Block + co % Block] = weight[(co * g.Cin + ci) * kk + t];
    }

    /// <summary>Copies one sample's planes into the interior of the zero-bordered buffer.</summary>
    private static void PadSample(Geometry g, float* sample, float* padded, int channels)
    {
        for (int c = 0; c < channels; c++)
            for (int r = 0; r < g.H; r++)
                new ReadOnlySpan<float>(sample + (c * g.H + r) * g.W, g.W)
                    .CopyTo(new Span<float>(padded + c * g.PaddedPlane + (r + g.Pad) * g.PaddedWidth + g.Pad, g.W));
    }

    /// <summary>
    /// One output row of 4 channels, two vector segments at a time, accumulated in 8 registers. The
    /// taps (ci, ky, kx) run as one flat loop over precomputed input offsets: with the three nested
    /// loops the JIT kept 6 of the 8 accumulators on the stack, storing one after every FMA.
    /// </summary>
    // Fully optimised from the first call: tier-0 code (and its on-stack-replacement version) keeps the
    // vector accumulators in memory, and a layer profile saw one layer stay 25x slow for seconds.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardRow<TVec>(Geometry g, float* padded, float* packed, int* tapOffsets, float* bias, int blk, int r, float* row, float* ySample)
        where TVec : unmanaged, IFloatVector<TVec>
    {
        var taps = g.Cin * g.K * g.K;
        var weights = packed + blk * taps * Block;
        var lanes = TVec.Lanes;
        for (int s = 0; s < g.Segments; s += 2)
        {
            var src = padded + r * g.PaddedWidth + s * lanes;
            TVec a00, a01, a10, a11, a20, a21, a30, a31;
            a00 = a01 = Bias<TVec>(bias, g, blk * Block);
            a10 = a11 = Bias<TVec>(bias, g, blk * Block + 1);
            a20 = a21 = Bias<TVec>(bias, g, blk * Block + 2);
            a30 = a31 = Bias<TVec>(bias, g, blk * Block + 3);
            var w = weights;
            for (int t = 0; t < taps; t++, w += Block)
            {
                var v0 = TVec.Load(src + tapOffsets[t]);
                var v1 = TVec.Load(src + tapOffsets[t] + lanes);
                var w0 = TVec.Broadcast(w[0]);
                var w1 = TVec.Broadcast(w[1]);
                var w2 = TVec.Broadcast(w[2]);
                var w3 = TVec.Broadcast(w[3]);
                a00 = TVec.MultiplyAdd(v0, w0, a00); a01 = TVec.MultiplyAdd(v1, w0, a01);
                a10 = TVec.MultiplyAdd(v0, w1, a10); a11 = TVec.MultiplyAdd(v1, w1, a11);
                a20 = TVec.MultiplyAdd(v0, w2, a20); a21 = TVec.MultiplyAdd(v1, w2, a21);
                a30 = TVec.MultiplyAdd(v0, w3, a30); a31 = TVec.MultiplyAdd(v1, w3, a31);
            }
            // Plain stores first: an accumulator still live across a call is spilled at every FMA.
            a00.Store(row); a01.Store(row + lanes);
            a10.Store(row + 2 * lanes); a11.Store(row + 3 * lanes);
            a20.Store(row + 4 * lanes); a21.Store(row + 5 * lanes);
            a30.Store(row + 6 * lanes); a31.Store(row + 7 * lanes);
            CopyOut(g, row, blk, r, s * lanes, ySample);
        }
    }

    /// <summary>Writes the 4 channels × 2 segments in <paramref name="row"/> to the output, clipped to the image width.</summary>
    private static void CopyOut(Geometry g, float* row, int blk, int r, int x0, float* ySample)
    {
        var width = Math.Min(2 * g.Lanes, g.W - x0);
        for (int c = 0; c < Block && width > 0; c++)
        {
            var co = blk * Block + c;
            if (co >= g.Cout) break;
            new ReadOnlySpan<float>(row + c * 2 * g.Lanes, width).CopyTo(new Span<float>(ySample + (co * g.H + r) * g.W + x0, width));
        }
    }

    /// <summary>Offset of tap (ci, ky, kx) in the padded sample, relative to the output position.</summary>
    private static int[] TapOffsets(Geometry g)
    {
        var offsets = new int[g.Cin * g.K * g.K];
        for (int ci = 0, t = 0; ci < g.Cin; ci++)
            for (int ky = 0; ky < g.K; ky++)
                for (int kx = 0; kx < g.K; kx++)
                    offsets[t++] = ci * g.PaddedPlane + ky * g.PaddedWidth + kx;
        return offsets;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TVec Bias<TVec>(float* bias, Geometry g, int co) where TVec : unmanaged, IFloatVector<TVec> =>
        bias is not null && co < g.Cout ? TVec.Broadcast(bias[co]) : default;

    /// <summary>
    /// Adds one sample's Σ_y,x dy[co,y,x]·x[ci,y+ky,x+kx] for 4 output channels and the taps kx and
    /// kx+1 (when <paramref name="pair"/>) to their vector accumulators: each dL/dy load feeds two FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightTaps<TVec>(Geometry g, float* padded, float* rows, int blk, int ci, int ky, int kx, bool pair, TVec* acc, TVec* next)
        where TVec : unmanaged, IFloatVector<TVec>
    {
        var a0 = acc[0]; var a1 = acc[1]; var a2 = acc[2]; var a3 = acc[3];
        var b0 = pair ? next[0] : default; var b1 = pair ? next[1] : default;
        var b2 = pair ? next[2] : default; var b3 = pair ? next[3] : default;
        var rowPlane = g.H * g.RowLength;
        var d0 = rows + blk * Block * rowPlane;
        var d1 = d0 + rowPlane;
        var d2 = d1 + rowPlane;
        var d3 = d2 + rowPlane;
        var src = padded + ci * g.PaddedPlane + ky * g.PaddedWidth + kx;
        for (int r = 0, o = 0; r < g.H; r++, src += g.PaddedWidth)
        {
            for (int s = 0; s < g.RowLength; s += TVec.Lanes, o += TVec.Lanes)
            {
                var v = TVec.Load(src + s);
                var w = TVec.Load(src + s + 1);
                var y0 = TVec.Load(d0 + o);
                var y1 = TVec.Load(d1 + o);
                var y2 = TVec.Load(d2 + o);
                var y3 = TVec.Load(d3 + o);
                a0 = TVec.MultiplyAdd(y0, v, a0); b0 = TVec.MultiplyAdd(y0, w, b0);
                a1 = TVec.MultiplyAdd(y1, v, a1); b1 = TVec.MultiplyAdd(y1, w, b1);
                a2 = TVec.MultiplyAdd(y2, v, a2); b2 = TVec.MultiplyAdd(y2, w, b2);
                a3 = TVec.MultiplyAdd(y3, v, a3); b3 = TVec.MultiplyAdd(y3, w, b3);
            }
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
        if (!pair) return;
        next[0] = b0; next[1] = b1; next[2] = b2; next[3] = b3;
    }
}
