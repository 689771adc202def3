using Dnm.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Som;

/// <summary>How the prototypes move given the neighbourhood-weighted sums S and H.</summary>
public enum SomRule
{
    /// <summary>w_j ← w_j + η·(S_j − H_j·w_j)/b.</summary>
    Minibatch,
    /// <summary>
    /// w_j ← w_j + η·(S_j − H_j·w_j)/max(H_j, 1): the batch-SOM rule (1−η)·w_j + η·S_j/H_j wherever a node
    /// holds at least one sample's worth of neighbourhood weight (H_j ≥ 1), and a step shrunk by H_j where it
    /// holds less. Each node moves a fraction η of the way to its neighbourhood mean every step, whatever
    /// its share of the batch (the minibatch rule moves it only η·H_j/b), so the map converges in far fewer
    /// iterations. The max(·, 1) keeps S_j/H_j from being formed out of underflowing sums on nearly empty
    /// nodes, where float rounding would otherwise decide the result.
    /// </summary>
    Batch,
}

/// <summary>
/// An R×C lattice of prototypes w_j ∈ R^D, rect or hex, flat or toroidal (<see cref="MapGrid"/>). The prototypes are
/// long-lived state, created outside every dispose scope and changed in place. They get no gradient: only the Kohonen
/// rule moves them.
/// </summary>
public sealed class SomLattice : IDisposable
{
    private readonly Tensor latticeSquaredDistance; // (K, K): ||p_j − p_k||² on the grid

    public SomLattice(MapGrid grid, int dim, Device device)
    {
        Grid = grid;
        Dim = dim;
        Prototypes = zeros(new long[] { grid.Nodes, dim }, dtype: float32, device: device).DetachFromDisposeScope();
        using var scope = NewDisposeScope();
        // Exact (multiples of ¼), from the grid that TE and the U-matrix also use; the same on every replica.
        latticeSquaredDistance = tensor(grid.SquaredDistanceMatrix(), new long[] { grid.Nodes, grid.Nodes }, device: device).DetachFromDisposeScope();
    }

    public MapGrid Grid { get; }
    public int Rows => Grid.Rows;
    public int Cols => Grid.Cols;
    public int Dim { get; }
    public int Nodes => Grid.Nodes;

    /// <summary>W: (K, D).</summary>
    public Tensor Prototypes { get; }

    /// <summary>
    /// d_ij = ||z_i − w_j||², (b, K): ||z||² + ||w||² − 2 z·w as one matrix product, computed in float64 and
    /// returned in z's type. In float32 that form cancels once z and W sit far from the origin (|z|² ~ 10³ against
    /// d ~ 1 on a trained map): its error is ε·|z|² (10⁻⁵ of d), and the product's kernel, hence that error,
    /// changes with the number of rows, so a worker with 3 samples got q and f 5·10⁻⁵ and the KL gradient 10⁻³
    /// away from one process with 12 (StepEquivalenceSpec). In float64 the cancellation error is ~10⁻¹³, far below
    /// float32's rounding of d, so each d_ij is the same whatever the batch. It costs one b×K×D product in
    /// float64 (15 M multiply-adds at b = 256 on the 20×30 map); forming the b×K×D differences instead would
    /// cost 61 MB and several memory-bound passes a step.
    /// </summary>
    public Tensor SquaredDistances(Tensor z)
    {
        var z64 = z.to_type(ScalarType.Float64);
        var w64 = Prototypes.to_type(ScalarType.Float64);
        var zz = TorchScalars.Square(z64).sum(1, keepdim: true);
        var ww = TorchScalars.Square(w64).sum(dim: 1).unsqueeze(0);
        using var zero = TorchScalars.Of(0.0);
        using var one = TorchScalars.Of(1.0);
        // A named alpha (TorchScalars): `zz + ww` passes a temporary scalar that a garbage collection can free
        // while libtorch reads it ("Expected false to be true" in Scalar::toDouble, seen in SOM pre-training).
        return torch.addmm(zz.add(ww, one), z64, w64.t(), beta: 1, alpha: -2).clamp_min(zero).to_type(z.dtype);
    }

    /// <summary>Sets W to the given rows of <paramref name="samples"/> (K, D) — used to seed the map from data.</summary>
    public void SetPrototypes(Tensor values)
    {
        using var _ = no_grad();
        Prototypes.copy_(values);
    }

    /// <summary>
    /// The mergeable SOM statistics of a batch: per-node sums of the z whose BMU the node is (K, D),
    /// and per-node BMU counts (K). The neighbourhood is applied later, once, to the reduced sums:
    /// S = N_σ·sums and H = N_σ·counts equal Σ_i h_ij z_i and Σ_i h_ij exactly, because h_ij
    /// depends on sample i only through its BMU.
    /// </summary>
    public (Tensor BmuSums, Tensor BmuCounts) BmuStatistics(Tensor z, Tensor bmu)
    {
        using var one = TorchScalars.Of(1.0);
        var sums = zeros(new long[] { Nodes, Dim }, dtype: z.dtype, device: z.device).index_add_(0, bmu, z, one);
        var counts = zeros(new long[] { Nodes }, dtype: z.dtype, device: z.device)
            .index_add_(0, bmu, ones(new long[] { bmu.shape[0] }, dtype: z.dtype, device: z.device), one);
        return (sums, counts);
    }

    /// <summary>Applies the Kohonen rule with the reduced statistics of a global batch of <paramref name="batch"/> samples.</summary>
    public void Update(Tensor bmuSums, Tensor bmuCounts, long batch, ScheduleValues schedule, SomRule rule)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var kernel = Kernel(schedule.Sigma);
        var s = kernel.mm(bmuSums);                 // S_j = Σ_i h_ij z_i
        var h = kernel.mv(bmuCounts).unsqueeze(1);  // H_j = Σ_i h_ij
        if (rule == SomRule.Minibatch)
        {
            using var step = TorchScalars.Of(schedule.Eta / batch);
            using var one = TorchScalars.Of(1.0);
            Prototypes.add_((s - h * Prototypes).mul_(step), one);
        }
        else
        {
            using var one = TorchScalars.Of(1.0);
            using var eta = TorchScalars.Of(schedule.Eta);
            Prototypes.add_((s - h * Prototypes).div_(h.clamp_min(one)).mul_(eta), one);
        }
    }

    // The kernel of the last σ: once σ reaches its floor every step uses the same one.
    private Tensor? cachedKernel;
    private double kernelSigma = double.NaN;

    /// <summary>Exponents below this give weights under float32's smallest normal number (e^−87.34); they are made 0.</summary>
    private const double SmallestExponent = -87.0;

    /// <summary>
    /// N_σ: (K, K), symmetric, h = exp(−‖p_j − p_k‖²/2σ²), with every weight below e^−87 (1.6·10⁻³⁸) exactly 0. Those
    /// would be subnormal floats, which the CPU computes with and multiplies by many times slower: on the 20x30 map SOM
    /// pre-training slowed from 64,000 to 9,000 samples/s as σ fell from 1.1 to 0.3 (docs/BENCHMARKS.md, "SOM
    /// pre-training"). Owned by the lattice; valid until the next call with another σ.
    /// </summary>
    private Tensor Kernel(double sigma)
    {
        if (cachedKernel is not null && sigma.Equals(kernelSigma)) return cachedKernel;
        cachedKernel?.Dispose();
        using var scope = NewDisposeScope();
        using var width = TorchScalars.Of(-2.0 * sigma * sigma);
        using var smallest = TorchScalars.Of(SmallestExponent);
        using var minusInfinity = TorchScalars.Of(double.NegativeInfinity);
        var exponent = latticeSquaredDistance.div(width);
        cachedKernel = exponent.masked_fill_(exponent.lt(smallest), minusInfinity).exp_().DetachFromDisposeScope();
        kernelSigma = sigma;
        return cachedKernel;
    }

    public void Dispose()
    {
        Prototypes.Dispose();
        latticeSquaredDistance.Dispose();
        cachedKernel?.Dispose();
    }
}
