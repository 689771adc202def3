using System.Text.Json;
using System.Text.Json.Serialization;

namespace Dnm.Core.Config;

/// <summary>
/// The config's closed value sets as enums, written and read as kebab-case words (<c>conv</c>, <c>minibatch</c>): the
/// words of config files, flags and checkpoints. A value is parsed once, at the edge (JSON or a flag); the code
/// compares enums.
/// </summary>
public static class KebabEnum
{
    /// <summary>The word of <paramref name="value"/> (<c>EncoderKind.Mlp</c> → <c>mlp</c>).</summary>
    public static string Name<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>Every word of <typeparamref name="T"/>, in declaration order.</summary>
    public static string[] Names<T>() where T : struct, Enum => Enum.GetValues<T>().Select(Name).ToArray();

    public static bool TryParse<T>(string? text, out T value) where T : struct, Enum
    {
        foreach (var candidate in Enum.GetValues<T>())
        {
            if (Name(candidate) != text) continue;
            value = candidate;
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>The value of <paramref name="text"/> for config key <paramref name="key"/>; a <see cref="ConfigException"/> listing the words otherwise.</summary>
    public static T Parse<T>(string key, string? text) where T : struct, Enum =>
        TryParse<T>(text, out var value) ? value : throw new ConfigException(Problem<T>(key, text));

    internal static string Problem<T>(string key, string? text) where T : struct, Enum =>
        $"{key} must be one of {string.Join(", ", Names<T>())}, got '{text}'";
}

/// <summary>Reads and writes every enum as its kebab-case word; an unknown word names the allowed ones.</summary>
public sealed class KebabEnumConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeToConvert.IsEnum;

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(Converter<>).MakeGenericType(typeToConvert))!;

    private sealed class Converter<T> : JsonConverter<T> where T : struct, Enum
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            // The serializer adds the key's path to the exception; DnmConfig.FromJson turns both into one line.
            return KebabEnum.TryParse<T>(text, out var value)
                ? value
                : throw new JsonException($"must be one of {string.Join(", ", KebabEnum.Names<T>())}, got '{text ?? reader.TokenType.ToString()}'");
        }

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(KebabEnum.Name(value));
    }
}
