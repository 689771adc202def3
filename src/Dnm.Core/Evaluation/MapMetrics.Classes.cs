namespace Dnm.Core.Evaluation;

public static partial class MapMetrics
{
    /// <summary>
    /// The map as a classifier: each node keeps its label from <paramref name="labelMap"/> (the majority class of the
    /// labelled samples it holds); a node that holds none (-1) takes the label of the nearest labelled node in prototype
    /// space (squared Euclidean distance between the prototypes <paramref name="prototypes"/>, nodes × <paramref name="dim"/>;
    /// ties go to the smaller node index). On a trained map those are its lattice neighbours, whatever the lattice's
    /// shape. With no labelled node at all, every node stays -1.
    /// </summary>
    public static int[] FillEmptyNodes(ReadOnlySpan<int> labelMap, ReadOnlySpan<float> prototypes, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        var nodes = labelMap.Length;
        RequireSameLength(nodes * dim, prototypes.Length, nameof(prototypes));
        var filled = labelMap.ToArray();
        for (var j = 0; j < nodes; j++)
        {
            if (labelMap[j] >= 0) continue;
            var w = prototypes.Slice(j * dim, dim);
            double best = double.PositiveInfinity;
            for (var k = 0; k < nodes; k++)
            {
                if (labelMap[k] < 0) continue;
                var v = prototypes.Slice(k * dim, dim);
                double d = 0;
                for (var i = 0; i < dim; i++)
                {
                    double diff = w[i] - v[i];
                    d += diff * diff;
                }
                if (d < best)
                    (best, filled[j]) = (d, labelMap[k]);
            }
        }
        return filled;
    }
}
