using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public sealed class DnmLossSpec
{
    private static double[] Row(Tensor t) => t.to_type(ScalarType.Float64).data<double>().ToArray();

    [Fact]
    public void Soft_assignment_with_one_degree_of_freedom_should_be_the_papers_kernel()
    {
        using var scope = NewDisposeScope();
        var d = tensor(new float[] { 0, 1, 4 }).reshape(1, 3);
        // (1 + d)^-1 = 1, 1/2, 1/5, normalised by 1.7.
        var q = Row(DnmLoss.SoftAssignment(d));
        Assert.Equal([1 / 1.7, 0.5 / 1.7, 0.2 / 1.7], q, (a, b) => Math.Abs(a - b) < 1e-6);
        Assert.Equal(q, Row(DnmLoss.SoftAssignment(d, degreesOfFreedom: 1)));
    }

    [Fact]
    public void More_degrees_of_freedom_should_give_the_lighter_tailed_student_t_kernel()
    {
        using var scope = NewDisposeScope();
        var d = tensor(new float[] { 0, 1, 4, 0, 3, 12 }).reshape(2, 3);
        // ν = 3: (1 + d/3)^-2. Row 1: 1, 9/16, 9/49. Row 2: 1, 1/4, 1/25.
        var q = Row(DnmLoss.SoftAssignment(d, degreesOfFreedom: 3));
        double s1 = 1 + 9.0 / 16 + 9.0 / 49, s2 = 1 + 0.25 + 0.04;
        double[] expected = [1 / s1, 9.0 / 16 / s1, 9.0 / 49 / s1, 1 / s2, 0.25 / s2, 0.04 / s2];
        Assert.Equal(expected, q, (a, b) => Math.Abs(a - b) < 1e-6);
        // Where distances are large (row 2) it is sharper than ν = 1: the nearest node gets more of the mass;
        // at small distances (row 1) it is flatter, as a Gaussian is.
        var paper = Row(DnmLoss.SoftAssignment(d));
        Assert.True(q[3] > paper[3]);
        Assert.True(q[0] < paper[0]);
    }

    [Fact]
    public void Many_degrees_of_freedom_should_stay_finite_where_the_kernel_underflows()
    {
        using var scope = NewDisposeScope();
        // ν = 100 at d = 10⁴ and 2·10⁴: the kernels are 101^-50.5 and 201^-50.5, both 0 in float32; their ratio is not.
        var d = tensor(new float[] { 10_000, 20_000 }).reshape(1, 2);
        var q = Row(DnmLoss.SoftAssignment(d, degreesOfFreedom: 100));
        var ratio = Math.Exp(-50.5 * (Math.Log(201) - Math.Log(101)));
        Assert.Equal([1 / (1 + ratio), ratio / (1 + ratio)], q, (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void Target_should_square_q_and_divide_by_the_global_soft_counts()
    {
        using var scope = NewDisposeScope();
        var q = tensor(new float[] { 0.5f, 0.5f, 0.9f, 0.1f }).reshape(2, 2);
        // f = (1.4, 0.6); row 1: (0.25/1.4, 0.25/0.6) normalised = (0.3, 0.7).
        var p = Row(DnmLoss.Target(q, tensor(new float[] { 1.4f, 0.6f })));
        double a = 0.81 / 1.4, b = 0.01 / 0.6;
        Assert.Equal([0.3, 0.7, a / (a + b), b / (a + b)], p, (x, y) => Math.Abs(x - y) < 1e-6);
    }

    [Fact]
    public void Kl_sum_should_match_its_definition()
    {
        using var scope = NewDisposeScope();
        var p = tensor(new float[] { 0.3f, 0.7f }).reshape(1, 2);
        var q = tensor(new float[] { 0.5f, 0.5f }).reshape(1, 2);
        var expected = 0.3 * Math.Log(0.3 / 0.5) + 0.7 * Math.Log(0.7 / 0.5);
        Assert.Equal(expected, DnmLoss.KlSum(p, q).item<float>(), 1e-6);
    }
}
