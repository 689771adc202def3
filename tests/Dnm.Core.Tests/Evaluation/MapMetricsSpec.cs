using Dnm.Core.Evaluation;
using Dnm.Core.Som;

namespace Dnm.Core.Tests.Evaluation;

public class MapMetricsSpec
{
    [Fact]
    public void Should_label_each_node_by_majority_with_ties_to_smallest_label_and_empty_nodes_minus_one()
    {
        // node 0: labels 1,1,0   -> 1 (majority)
        // node 1: labels 2,0     -> 0 (tie 1:1, smallest label)
        // node 2: labels 0,1,0,1 -> 0 (tie 2:2, smallest label)
        // node 3: only an unknown label (-1), which is ignored -> -1 (no samples)
        int[] bmu = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
        int[] labels = [1, 1, 0, 2, 0, 0, 1, 0, 1, -1];

        var map = MapMetrics.LabelMap(bmu, labels, nodes: 4, classes: 3);

        Assert.Equal(new[] { 1, 0, 0, -1 }, map);
    }

    [Fact]
    public void Should_reject_a_label_outside_the_class_range()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MapMetrics.LabelMap([0], [3], nodes: 1, classes: 3));
    }

    [Fact]
    public void Should_count_purity_with_unlabelled_nodes_as_wrong()
    {
        int[] labelMap = [1, 0, 0, -1];
        // sample: bmu -> node label vs own label
        //   0: node 0 -> 1 vs 1  right
        //   1: node 0 -> 1 vs 0  wrong
        //   2: node 1 -> 0 vs 0  right
        //   3: node 2 -> 0 vs 2  wrong
        //   4: node 3 -> -1 vs 1 wrong (empty node)
        //   5: node 3 -> -1 vs -1 wrong (an empty node never matches, even an unknown label)
        // purity = 2 / 6
        var purity = MapMetrics.Purity([0, 0, 1, 2, 3, 3], [1, 0, 0, 2, 1, -1], labelMap);

        Assert.Equal(2.0 / 6.0, purity, 12);
    }

    [Fact]
    public void Should_compute_nmi_of_a_hand_worked_six_sample_example()
    {
        // U (clusters) = 0 0 0 1 1 1 ; V (labels) = 0 0 1 1 1 1 ; n = 6
        // joint counts: (0,0)=2 (0,1)=1 (1,1)=3 ; marginals U: 3,3  V: 2,4
        // H(U) = ln 2                                 = 0.693147
        // H(V) = -(1/3 ln 1/3 + 2/3 ln 2/3)           = 0.636514
        // I    = 2/6 ln(6·2/(3·2)) + 1/6 ln(6·1/(3·4)) + 3/6 ln(6·3/(3·4))
        //      = 1/3 ln 2 + 1/6 ln 1/2 + 1/2 ln 3/2   = 0.231049 − 0.115525 + 0.202733 = 0.318257
        // NMI  = 2·0.318257 / (0.693147 + 0.636514)   = 0.478704
        var nmi = MapMetrics.Nmi([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]);

        Assert.Equal(0.478704, nmi, 6);
    }

    [Fact]
    public void Should_match_an_independently_computed_nmi()
    {
        // Expected value from a separate Python implementation using I = H(U) + H(V) − H(U,V) and
        // NMI = 2I / (H(U) + H(V)) (scikit-learn was not installed on the machine to cross-check).
        int[] clusters = [2, 1, 3, 5, 0, 0, 4, 0, 2, 4, 0, 4, 1, 0, 0, 3, 3, 0, 1, 0, 4, 3, 0, 4, 0, 1, 5, 5, 4, 0];
        int[] labels = [1, 0, 0, 2, 0, 0, 2, 0, 1, 2, 0, 2, 0, 0, 2, 1, 1, 0, 0, 0, 2, 1, 0, 2, 0, 0, 2, 2, 2, 0];

        Assert.Equal(0.6226060284150488, MapMetrics.Nmi(clusters, labels), 12);
        // NMI is symmetric in its two labellings.
        Assert.Equal(0.6226060284150488, MapMetrics.Nmi(labels, clusters), 12);
    }

    [Fact]
    public void Should_give_nmi_one_for_a_relabelled_perfect_match_and_zero_for_independence()
    {
        Assert.Equal(1.0, MapMetrics.Nmi([5, 5, 7, 7, 9, 9], [0, 0, 1, 1, 2, 2]), 12);
        // Every cluster holds each label equally often: I = 0.
        Assert.Equal(0.0, MapMetrics.Nmi([0, 1, 0, 1], [0, 0, 1, 1]), 12);
    }

    [Fact]
    public void Should_define_nmi_for_single_group_labellings()
    {
        // Both entropies 0: identical trivial partitions agree perfectly.
        Assert.Equal(1.0, MapMetrics.Nmi([3, 3, 3], [0, 0, 0]));
        // Only one entropy 0: no shared information.
        Assert.Equal(0.0, MapMetrics.Nmi([3, 3, 3], [0, 1, 0]));
        Assert.Equal(0.0, MapMetrics.Nmi([0, 1, 2], [4, 4, 4]));
    }

    [Fact]
    public void Should_average_quantization_error()
    {
        // (1 + 2 + 3 + 6) / 4 = 3
        Assert.Equal(3.0, MapMetrics.QuantizationError([1f, 2f, 3f, 6f]), 12);
    }

    [Fact]
    public void Should_count_topographic_errors_on_the_lattice_not_by_index_difference()
    {
        // 2×3 lattice:  0 1 2
        //               3 4 5
        // (0,1) right neighbour ok; (0,3) below ok; (5,2) above ok;
        // (0,4) diagonal -> error; (2,3) consecutive indices but different rows -> error.
        // TE = 2 / 5
        var te = MapMetrics.TopographicError([0, 0, 5, 0, 2], [1, 3, 2, 4, 3], new MapGrid(2, 3));

        Assert.Equal(0.4, te, 12);
    }

    [Fact]
    public void Should_reject_empty_inputs()
    {
        Assert.Throws<ArgumentException>(() => MapMetrics.QuantizationError([]));
        Assert.Throws<ArgumentException>(() => MapMetrics.Nmi([], []));
        Assert.Throws<ArgumentException>(() => MapMetrics.Purity([], [], [0]));
    }
}
