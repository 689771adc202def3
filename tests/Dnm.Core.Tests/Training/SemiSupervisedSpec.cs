using Dnm.Core.Evaluation;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public class SemiSupervisedSpec
{
    [Fact]
    public void Node_class_counts_should_count_the_labelled_samples_by_bmu_decay_and_give_smoothed_distributions()
    {
        // Three nodes, two classes. Samples: (node 0, class 1), (node 0, class 1), (node 2, class 0), and one unlabelled.
        var batch = NodeClasses.Histogram([0, 0, 2, 1], [1, 1, 0, -1], nodes: 3, classes: 2);
        Assert.Equal([0f, 2f, 0f, 0f, 1f, 0f], batch);

        var classes = new NodeClasses(3, 2);
        classes.Set([4f, 0f, 0f, 0f, 0f, 0f]);
        classes.Accumulate(batch);
        // N ← ρN + batch, ρ = 0.99.
        Assert.Equal([3.96f, 2f, 0f, 0f, 1f, 0f], classes.Counts);

        var p = new float[6];
        classes.Probabilities(p);
        // (N_jc + 1/C) / (Σ_c N_jc + 1): node 0 (3.96, 2) → 4.46/6.96 and 2.5/6.96; the empty node 1 is uniform.
        Assert.Equal(4.46 / 6.96, p[0], 5);
        Assert.Equal(2.5 / 6.96, p[1], 5);
        Assert.Equal([0.5f, 0.5f], p[2..4]);
        Assert.Equal(1.5 / 2, p[4], 5);
        Assert.Equal(0.5 / 2, p[5], 5);
    }

    [Fact]
    public void The_supervised_term_should_be_the_cross_entropy_of_the_labelled_samples_only()
    {
        using var scope = NewDisposeScope();
        // Two nodes that are sure of their class (P = identity); sample 0 (class 0) sits between them, sample 1 is
        // unlabelled, sample 2 (class 1) sits on node 0.
        var logits = tensor(new float[] { 0, 0, 3, -1, 2, 0 }, new long[] { 3, 2 }).requires_grad_();
        var q = logits.softmax(1);
        var probabilities = tensor(new float[] { 1, 0, 0, 1 }, new long[] { 2, 2 });
        var labels = tensor(new long[] { 0, -1, 1 });
        var config = new Config.DnmConfig { LabelWeight = 2 };
        var (loss, sum) = DnmLoss.AddSupervised(config, zeros(1), q, probabilities, labels, globalBatch: 4);

        var q2 = (float)(1 / (1 + Math.Exp(2))); // q of sample 2 on node 1
        var expected = -Math.Log(0.5) - Math.Log(q2);
        Assert.Equal(expected, sum.item<float>(), 4);
        // Weighted by label-weight over the global batch.
        Assert.Equal(2 * expected / 4, loss.item<float>(), 4);
        // The unlabelled sample gets no gradient; the labelled ones do.
        var grad = autograd.grad([loss], [logits])[0];
        Assert.Equal(0f, grad[1].abs().sum().item<float>());
        Assert.True(grad[2].abs().sum().item<float>() > 0);

        // No labelled sample: the loss is unchanged and the sum is zero.
        var (same, none) = DnmLoss.AddSupervised(config, loss, q, probabilities, tensor(new long[] { -1, -1, -1 }), 4);
        Assert.Same(loss, same);
        Assert.Equal(0f, none.item<float>());
    }

    [Fact]
    public void A_joint_step_should_reduce_exactly_the_labelled_samples_class_counts_by_bmu()
    {
        using var e = new StepEngine(StepEngineSpec.Small, StepEngineSpec.Shape, CPU, 32, classes: 3);
        var images = StepEngineSpec.SyntheticImages(32, 1);
        using (var scope = NewDisposeScope())
            e.Som.SetPrototypes(e.Embed(images, 32).narrow(0, 0, e.Som.Nodes));
        var labels = Enumerable.Range(0, 32).Select(i => i % 4 == 3 ? -1 : i % 3).ToArray();
        var f = new float[e.Layout.Nodes];
        var s = new float[e.Layout.Length];

        // The BMUs the step will use: the same embeddings, against the same prototypes.
        int[] bmu;
        using (var scope = NewDisposeScope())
            bmu = e.Som.SquaredDistances(e.Embed(images, 32)).argmin(1).data<long>().ToArray().Select(b => (int)b).ToArray();
        e.Forward(images, ReadOnlySpan<float>.Empty, new RankSlice(32, 0, 1), StepMode.Joint, f, default, labels);
        e.Backward(f, s);
        var layout = e.Layout;
        Assert.Equal(NodeClasses.Histogram(bmu, labels, layout.Nodes, 3), s.AsSpan(layout.ClassCountsOffset, layout.Nodes * 3).ToArray());
        Assert.Equal(24f, s[layout.LabelledCountIndex]);
        Assert.True(s[layout.SupervisedSumIndex] > 0);
        var loss = e.Apply(s, 32, new ScheduleValues(1, 0.1));
        Assert.NotNull(loss.Supervised);
        // Applied: the counts started at zero, so they are now this step's.
        Assert.Equal(NodeClasses.Histogram(bmu, labels, layout.Nodes, 3), e.Classes!.Counts);
    }

    [Fact]
    public void An_empty_node_should_take_the_class_of_the_nearest_labelled_prototype()
    {
        // Four nodes on a line in a 1-D latent: 0 → class 2, 3 → class 1; nodes 1 and 2 hold no labelled sample.
        var filled = MapMetrics.FillEmptyNodes([2, -1, -1, 1], [0f, 1f, 2.5f, 3f], dim: 1);
        Assert.Equal([2, 2, 1, 1], filled);
        // Ties go to the smaller node; with no labelled node at all nothing changes.
        Assert.Equal([0, 0, 1], MapMetrics.FillEmptyNodes([0, -1, 1], [0f, 1f, 2f], 1));
        Assert.Equal([-1, -1], MapMetrics.FillEmptyNodes([-1, -1], [0f, 1f], 1));
    }
}
