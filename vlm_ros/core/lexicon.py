"""The word tables of the instruction parser (English and Chinese).

Everything the parser knows about words lives here as data, so a new synonym, colour, relation or
noun is one table entry (plus a test) and never new control flow in ``instruction.py``.

English phrases are written as plain lowercase strings; the parser splits them into tokens and
matches them longest-first against the command's tokens.  Chinese entries are plain strings matched
longest-first against the unsegmented text.  Values are the canonical names the rest of vlm_ros uses
(``ObjectQuery`` fields: English nouns, "large"/"small", "left"/"right"/..., relation names).
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Input limits
# --------------------------------------------------------------------------------------------

MAX_COMMAND_CHARS = 1000

# Invisible format characters that speech/IME front-ends leave behind; dropped silently.
INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"

# --------------------------------------------------------------------------------------------
# Politeness: stripped before anything else ("please grab", "could you find", "请帮我抓取")
# --------------------------------------------------------------------------------------------

EN_POLITE_PREFIXES: tuple[str, ...] = (
    "please", "kindly", "hey robot", "hey", "ok robot", "okay robot", "robot", "ok", "okay",
    "now", "then", "and", "so", "just",
    "can you", "could you", "would you", "will you", "can you please", "could you please",
    "would you please", "would you mind", "do you mind",
    "i want you to", "i would like you to", "i'd like you to", "i need you to",
    "i want to ask you to", "try to", "go and", "go ahead and", "please go and", "let's",
)
EN_POLITE_SUFFIXES: tuple[str, ...] = (
    "please", "for me", "now", "right now", "thanks", "thank you", "quickly", "carefully",
    "slowly", "gently", "over there", "right there", "there", "over here", "here",
    "for me please", "if you can", "if you could",
)

ZH_POLITE_PREFIXES: tuple[str, ...] = (
    "请你", "请", "帮我", "帮忙", "麻烦你", "麻烦", "你能不能", "能不能", "你可不可以", "可不可以",
    "你可以", "可以", "你能", "能", "给我", "我想让你", "我要你", "我需要你", "机器人",
    "你", "现在", "然后", "再",
)
ZH_POLITE_SUFFIXES: tuple[str, ...] = (
    "好吗", "好不好", "可以吗", "行吗", "谢谢", "吗", "吧", "呢", "啊", "呀", "一下",
)
# English contractions expanded before tokenising ("where's" -> "where is").
EN_CONTRACTIONS: dict[str, str] = {
    "where's": "where is", "what's": "what is", "it's": "it is", "that's": "that is",
    "i'd": "i would", "i'm": "i am", "you're": "you are", "who's": "who is",
    "there's": "there is", "here's": "here is", "can't": "cannot", "won't": "will not",
}
# Words a verb drags along that say nothing about the object ("pick the cup up").
EN_PARTICLES: dict[str, frozenset[str]] = {
    "pick": frozenset({"up", "out"}),
    "place": frozenset({"down", "back", "away"}),
    "look": frozenset({"at"}),
}
# Openers of a clarification answer ("I mean the left one", "it's the red one").
EN_FOLLOWUP_PREFIXES: tuple[str, ...] = (
    "i mean", "i meant", "i said", "it is", "that is", "i want", "i would like", "the answer is",
    "use", "choose", "select", "go with", "try",
)
ZH_FOLLOWUP_PREFIXES: tuple[str, ...] = (
    "我说的是", "我是说", "我指的是", "我要的是", "我要", "是", "要", "选", "选择",
)
# Trailing place words of a navigation goal ("走到桌子那边", "去椅子旁边").
ZH_NAVIGATE_SUFFIXES: tuple[str, ...] = (
    "那里", "那儿", "那边", "这里", "这儿", "这边", "旁边", "附近", "前面", "跟前", "面前",
    "边上", "去", "来",
)
# Punctuation removed from Chinese commands (they are not split into words).
ZH_PUNCTUATION = "，。！？、；：,.!?;:\"'“”‘’（）()《》<>【】[]{}…~～·-—_/|"

# Removed wherever they occur: softeners that never carry meaning ("看一下杯子").
ZH_FILLERS: tuple[str, ...] = ("一下",)

# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------

# English verb phrases at the start of a command -> action.  Longest phrase wins, so "look for"
# (find) beats "look" (look) and "pick up" beats "pick".
EN_ACTIONS: dict[str, str] = {
    # pick
    "pick up": "pick", "pick": "pick", "grab": "pick", "grasp": "pick", "take": "pick",
    "get": "pick", "fetch": "pick", "bring": "pick", "bring me": "pick", "get me": "pick",
    "fetch me": "pick", "hand me": "pick", "give me": "pick", "collect": "pick",
    "lift": "pick", "lift up": "pick", "take hold of": "pick", "pick out": "pick",
    # indirect: what the speaker wants is the object in the gripper (delivering it is the
    # robot's task executive's job, not a goal this node sends)
    "i want": "pick", "i would like": "pick", "i need": "pick", "can i have": "pick",
    "could i have": "pick", "pass me": "pick", "hand over": "pick",
    # after "would you mind" / "how about": the -ing forms
    "grabbing": "pick", "picking up": "pick", "taking": "pick", "getting": "pick",
    "fetching": "pick", "bringing": "pick", "bringing me": "pick", "putting": "place",
    "placing": "place", "going to": "navigate", "moving to": "navigate",
    "walking to": "navigate", "looking at": "look", "finding": "find", "following": "follow",
    "see": "find",
    # place
    "put": "place", "put down": "place", "place": "place", "drop": "place", "drop off": "place",
    "set": "place", "set down": "place", "leave": "place", "stick": "place",
    # navigate
    "go to": "navigate", "go over to": "navigate", "go towards": "navigate",
    "go toward": "navigate", "walk to": "navigate", "walk over to": "navigate",
    "walk towards": "navigate", "drive to": "navigate", "drive towards": "navigate",
    "move to": "navigate", "move towards": "navigate", "move toward": "navigate",
    "approach": "navigate", "head to": "navigate", "head towards": "navigate",
    "head over to": "navigate", "navigate to": "navigate", "navigate towards": "navigate",
    "come to": "navigate", "go near": "navigate", "go up to": "navigate", "get to": "navigate",
    "get close to": "navigate", "go next to": "navigate",
    # look
    "look at": "look", "look towards": "look", "look toward": "look", "look": "look",
    "face": "look", "turn to": "look", "turn towards": "look", "turn toward": "look",
    "point at": "look", "point to": "look", "stare at": "look", "watch": "look",
    "focus on": "look", "check out": "look",
    # find
    "find": "find", "find me": "find", "locate": "find", "search for": "find",
    "look for": "find", "where is": "find", "where are": "find", "seek": "find",
    "show me": "find", "do you see": "find", "can you see": "find", "detect": "find",
    "look around for": "find", "search": "find", "spot": "find", "identify": "find",
    # follow
    "follow": "follow", "track": "follow", "keep following": "follow", "go after": "follow",
    "come with": "follow", "chase": "follow", "keep track of": "follow",
    # stop
    "stop": "stop", "halt": "stop", "freeze": "stop", "cancel": "stop", "abort": "stop",
    "stay": "stop", "wait": "stop", "hold on": "stop", "stand still": "stop",
    "emergency stop": "stop", "e-stop": "stop", "don't move": "stop", "do not move": "stop",
}

# Shown in "needs an object" errors.
ACTION_EXAMPLES: dict[str, str] = {
    "pick": "pick up the red cup", "place": "put the apple in the bowl",
    "navigate": "go to the chair", "look": "look at the bowl", "find": "find the cat",
    "follow": "follow the person",
}

# Chinese verbs at the start of a command -> action (longest first, so "取消" is stop, "取" pick).
ZH_ACTIONS: dict[str, str] = {
    # pick
    "抓取": "pick", "抓起": "pick", "抓住": "pick", "抓": "pick", "拿起来": "pick", "拿起": "pick",
    "拿来": "pick", "拿给我": "pick", "拿": "pick", "取来": "pick", "取": "pick",
    "捡起": "pick", "捡": "pick", "拾起": "pick", "夹起": "pick", "夹": "pick",
    "递给我": "pick", "给我拿": "pick", "拿取": "pick", "握住": "pick",
    "去拿": "pick",
    # navigate
    "导航到": "navigate", "导航去": "navigate", "导航至": "navigate", "走到": "navigate",
    "走向": "navigate", "走去": "navigate", "走近": "navigate", "前往": "navigate",
    "去到": "navigate", "去": "navigate", "到": "navigate", "移动到": "navigate",
    "开到": "navigate", "靠近": "navigate", "过去": "navigate", "接近": "navigate",
    "来到": "navigate", "走过去": "navigate",
    # look
    "看向": "look", "注视": "look", "看着": "look", "看看": "look", "看": "look",
    "望向": "look", "朝向": "look", "转向": "look", "盯着": "look", "对准": "look",
    # find
    "寻找": "find", "找到": "find", "找找": "find", "找": "find", "查找": "find",
    "搜索": "find", "搜寻": "find", "定位": "find", "去找": "find",
    # follow
    "跟着": "follow", "跟随": "follow", "跟踪": "follow", "追踪": "follow", "跟上": "follow",
    "跟": "follow", "追": "follow",
    # stop
    "停止": "stop", "停下来": "stop", "停下": "stop", "停": "stop", "别动": "stop",
    "不要动": "stop", "站住": "stop", "取消": "stop", "中止": "stop", "终止": "stop",
    "急停": "stop", "暂停": "stop", "等等": "stop",
}

# "X在哪" / "X在哪里" / "哪里有X": find, with the object before / after the question word.
ZH_FIND_SUFFIXES: tuple[str, ...] = ("在哪里", "在哪儿", "在哪", "在什么地方", "在什么位置")
ZH_FIND_PREFIXES: tuple[str, ...] = ("哪里有", "哪儿有", "哪有")

# --------------------------------------------------------------------------------------------
# Place: destination prepositions
# --------------------------------------------------------------------------------------------

# English prepositions that introduce a place destination -> destination_relation.
EN_DESTINATION_PREPS: dict[str, str] = {
    "in": "in", "into": "in", "inside": "in", "inside of": "in", "in to": "in",
    "on": "on", "onto": "on", "on to": "on", "upon": "on", "on top of": "on", "atop": "on",
}

# Chinese: 把 X <verb> Y <postposition>.
ZH_PLACE_OBJECT_MARKERS: tuple[str, ...] = ("把", "将")
ZH_PLACE_VERBS: dict[str, str | None] = {
    # verb -> destination relation it implies (None: decided by the postposition, default "on")
    "放到": None, "放在": None, "放至": None, "放回": None, "放回到": None, "放置到": None,
    "放置在": None, "搁到": None, "搁在": None, "摆到": None, "摆在": None, "放": None,
    "放进": "in", "放入": "in", "放进去": "in", "装进": "in", "装到": "in", "扔进": "in",
    "扔到": None, "丢进": "in", "丢到": None,
}
ZH_PLACE_DROP: tuple[str, ...] = ("放下来", "放下")  # "把杯子放下": place with no destination
ZH_DESTINATION_POSTPOSITIONS: dict[str, str] = {
    "上面": "on", "上边": "on", "上方": "on", "之上": "on", "上": "on", "顶上": "on",
    "里面": "in", "里边": "in", "里头": "in", "之中": "in", "当中": "in", "里": "in", "中": "in",
    "内": "in", "内部": "in",
}

# --------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------

# Colour words (English and Chinese) -> canonical English colour name.
COLORS: dict[str, str] = {
    "red": "red", "orange": "orange", "yellow": "yellow", "green": "green", "blue": "blue",
    "purple": "purple", "violet": "purple", "pink": "pink", "brown": "brown", "black": "black",
    "white": "white", "gray": "gray", "grey": "gray",
    "红色": "red", "红": "red", "橙色": "orange", "橙": "orange", "橘色": "orange",
    "橘黄色": "orange", "黄色": "yellow", "黄": "yellow", "绿色": "green", "绿": "green",
    "蓝色": "blue", "蓝": "blue", "紫色": "purple", "紫": "purple", "粉红色": "pink",
    "粉红": "pink", "粉色": "pink", "粉": "pink", "棕色": "brown", "棕": "brown",
    "褐色": "brown", "褐": "brown", "咖啡色": "brown", "黑色": "black", "黑": "black",
    "白色": "white", "白": "white", "灰色": "gray", "灰": "gray",
    # Named shades -> the colour the colour model (core/color.py) judges them as.  Each choice is
    # the class a typical swatch of the colour falls in (tests/test_color_words.py checks this):
    # * cyan/teal/turquoise/aqua/青色 -> blue: hue 174-180 deg lies in the model's blue band
    #   (165-255); mapping them to green would make every real teal object fail "teal".
    # * magenta/fuchsia/紫红 -> pink: hue 300-330 is the model's pink band.
    # * beige/cream/ivory/米色 -> white: pale tints are white to the model; tan/khaki -> brown and
    #   olive -> green follow the darker swatches people mean (tan leather, olive drab).
    # * silver -> gray, charcoal -> black (darker than the model's gray).
    # The shade itself (dark/light/navy vs sky) is NOT judged: "dark blue" keeps "dark" as a word
    # of its own (see UNJUDGED_ATTRIBUTES), while one-word shades (navy, 深蓝) are judged as
    # their base colour only.
    "navy": "blue", "cyan": "blue", "teal": "blue", "turquoise": "blue", "aqua": "blue",
    "azure": "blue", "cobalt": "blue", "sapphire": "blue", "indigo": "purple",
    "crimson": "red", "scarlet": "red", "maroon": "red", "burgundy": "red", "ruby": "red",
    "cherry": "red", "magenta": "pink", "fuchsia": "pink", "rose": "pink",
    "beige": "white", "cream": "white", "ivory": "white", "tan": "brown", "khaki": "brown",
    "chocolate": "brown", "olive": "green", "lime": "green", "emerald": "green",
    "gold": "yellow", "golden": "yellow", "amber": "orange", "silver": "gray",
    "charcoal": "black", "lavender": "purple", "lilac": "purple", "plum": "purple",
    "深蓝色": "blue", "深蓝": "blue", "浅蓝色": "blue", "浅蓝": "blue", "天蓝色": "blue",
    "天蓝": "blue", "藏青色": "blue", "藏青": "blue", "藏蓝色": "blue", "藏蓝": "blue",
    "宝蓝色": "blue", "宝蓝": "blue", "湖蓝色": "blue", "湖蓝": "blue", "海军蓝": "blue",
    "青色": "blue",
    "深绿色": "green", "深绿": "green", "浅绿色": "green", "浅绿": "green", "墨绿色": "green",
    "墨绿": "green", "草绿色": "green", "草绿": "green", "翠绿色": "green", "翠绿": "green",
    "橄榄绿": "green",
    "深红色": "red", "深红": "red", "酒红色": "red", "酒红": "red", "大红色": "red",
    "大红": "red", "鲜红色": "red", "鲜红": "red",
    "紫红色": "pink", "紫红": "pink", "玫红色": "pink", "玫红": "pink", "品红": "pink",
    "浅粉色": "pink", "浅粉": "pink",
    "深紫色": "purple", "深紫": "purple", "浅紫色": "purple", "浅紫": "purple",
    "淡紫色": "purple", "淡紫": "purple",
    "米色": "white", "米白色": "white", "米白": "white", "乳白色": "white", "乳白": "white",
    "象牙白": "white",
    "金色": "yellow", "金黄色": "yellow", "金黄": "yellow", "银色": "gray", "银灰色": "gray",
    "银灰": "gray", "深灰色": "gray", "深灰": "gray", "浅灰色": "gray", "浅灰": "gray",
    "深棕色": "brown", "深棕": "brown", "驼色": "brown", "卡其色": "brown",
}

SIZES: dict[str, str] = {
    "big": "large", "large": "large", "huge": "large", "biggest": "large", "largest": "large",
    "bigger": "large", "larger": "large", "giant": "large", "tall": "large", "tallest": "large",
    "small": "small", "little": "small", "tiny": "small", "smallest": "small",
    "smaller": "small", "littlest": "small", "short": "small",
    "最大": "large", "大": "large", "较大": "large",
    "最小": "small", "小": "small", "较小": "small",
}

# English unary location selectors: single adjectives and fixed phrases -> location.
EN_LOCATIONS: dict[str, str] = {
    "left": "left", "leftmost": "left", "left-most": "left", "left-hand": "left",
    "on the left": "left", "to the left": "left", "at the left": "left", "on the far left": "left",
    "far left": "left", "on your left": "left", "on my left": "left", "on the left side": "left",
    "right": "right", "rightmost": "right", "right-most": "right", "right-hand": "right",
    "on the right": "right", "to the right": "right", "at the right": "right",
    "on the far right": "right", "far right": "right", "on your right": "right",
    "on my right": "right", "on the right side": "right",
    "middle": "middle", "center": "middle", "centre": "middle", "central": "middle",
    "in the middle": "middle", "in the center": "middle", "in the centre": "middle",
    "at the center": "middle", "at the centre": "middle",
    "top": "top", "upper": "top", "topmost": "top", "uppermost": "top", "at the top": "top",
    "on top": "top", "on the top": "top",
    "bottom": "bottom", "lower": "bottom", "bottommost": "bottom", "lowest": "bottom",
    "at the bottom": "bottom", "on the bottom": "bottom",
    "nearest": "nearest", "closest": "nearest", "near": "nearest", "nearer": "nearest",
    "closer": "nearest", "nearest to me": "nearest", "closest to me": "nearest",
    "nearest to you": "nearest", "closest to you": "nearest", "near me": "nearest",
    "near you": "nearest", "close to me": "nearest", "close to you": "nearest",
    "farthest": "farthest", "furthest": "farthest", "far": "farthest", "farther": "farthest",
    "further": "farthest", "far away": "farthest", "farthest away": "farthest",
    "furthest away": "farthest", "farthest from me": "farthest", "furthest from me": "farthest",
    "in the back": "farthest", "at the back": "farthest", "in the front": "nearest",
    "at the front": "nearest",
}

ZH_LOCATIONS: dict[str, str] = {
    "最左边": "left", "最左侧": "left", "最左面": "left", "最左": "left", "左边": "left",
    "左侧": "left", "左面": "left", "左手边": "left", "左": "left",
    "最右边": "right", "最右侧": "right", "最右面": "right", "最右": "right", "右边": "right",
    "右侧": "right", "右面": "right", "右手边": "right", "右": "right",
    "中间": "middle", "正中间": "middle", "中央": "middle", "中心": "middle",
    "最上面": "top", "最上边": "top", "上面": "top", "上方": "top", "上边": "top", "顶部": "top",
    "最下面": "bottom", "最下边": "bottom", "下面": "bottom", "下方": "bottom", "下边": "bottom",
    "底部": "bottom",
    "离我最近": "nearest", "离你最近": "nearest", "最近": "nearest", "最靠近": "nearest",
    "近处": "nearest", "前面": "nearest",
    "离我最远": "farthest", "离你最远": "farthest", "最远": "farthest", "远处": "farthest",
    "后面": "farthest",
}

# Ordinals.  -1 means "last".
EN_ORDINALS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5,
    "6th": 6, "7th": 7, "8th": 8, "9th": 9, "10th": 10, "last": -1, "final": -1,
    "number one": 1, "number two": 2, "number three": 3, "number four": 4, "number five": 5,
    "number 1": 1, "number 2": 2, "number 3": 3, "number 4": 4, "number 5": 5,
}
# "second to last", "second last": counted from the other end.
EN_ORDINAL_FROM_END: tuple[str, ...] = ("to last", "last", "to the last")
EN_FROM_END_WORDS: frozenset[str] = frozenset({"end", "last"})  # "second from the end"

ZH_NUMERALS: dict[str, int] = {
    "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
    "十": 10,
    "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "10": 10,
}
ZH_LAST: tuple[str, ...] = ("最后一", "最后", "末尾")
ZH_FROM_END = "倒数"
ZH_MEASURE_WORDS: tuple[str, ...] = (
    "个", "只", "把", "张", "本", "辆", "台", "条", "件", "位", "匹", "头", "部", "盆", "瓶", "颗",
    "枚", "块", "支", "根", "棵", "顶", "双",
)

# Where an ordinal counts from ("from the left", "from the front", "从左数") -> ordinal_from.
EN_ORDINAL_FROM: dict[str, str] = {
    "left": "left", "right": "right", "top": "top", "bottom": "bottom", "front": "near",
    "near": "near", "near side": "near", "nearest": "near", "closest": "near", "me": "near",
    "you": "near", "back": "far", "far": "far", "far side": "far", "farthest": "far",
    "furthest": "far", "rear": "far", "left side": "left", "right side": "right",
}
ZH_ORDINAL_FROM: dict[str, str] = {
    "左": "left", "右": "right", "上": "top", "下": "bottom", "前": "near", "近": "near",
    "后": "far", "远": "far",
}
# A location used with an ordinal and no explicit "from" says where counting starts:
# "the second cup on the left" / "左边第二个杯子" -> ordinal 2 from the left.
LOCATION_TO_ORDINAL_FROM: dict[str, str] = {
    "left": "left", "right": "right", "top": "top", "bottom": "bottom", "nearest": "near",
    "farthest": "far",
}
OPPOSITE_ORDINAL_FROM: dict[str, str] = {
    "left": "right", "right": "left", "top": "bottom", "bottom": "top", "near": "far",
    "far": "near",
}
DEFAULT_ORDINAL_FROM = "left"

# --------------------------------------------------------------------------------------------
# Relations to a second (anchor) object
# --------------------------------------------------------------------------------------------

EN_RELATIONS: dict[str, str] = {
    "next to": "next_to", "beside": "next_to", "besides": "next_to", "by": "next_to",
    "near": "next_to", "near to": "next_to", "close to": "next_to", "nearby": "next_to",
    "adjacent to": "next_to", "alongside": "next_to", "by the side of": "next_to",
    "to the left of": "left_of", "on the left of": "left_of", "left of": "left_of",
    "on the left side of": "left_of", "to the left side of": "left_of",
    "at the left of": "left_of",
    "to the right of": "right_of", "on the right of": "right_of", "right of": "right_of",
    "on the right side of": "right_of", "to the right side of": "right_of",
    "at the right of": "right_of",
    "in front of": "in_front_of",
    "behind": "behind", "in back of": "behind", "at the back of": "behind",
    "above": "above", "over": "above",
    "below": "below", "under": "below", "underneath": "below", "beneath": "below",
    "on top of": "on", "on": "on", "upon": "on", "sitting on": "on", "lying on": "on",
    "in": "in", "inside": "in", "inside of": "in", "within": "in", "into": "in",
}

# Chinese "<anchor>(的)<relation>的<object>": 笔记本电脑旁边的杯子, 桌子上的杯子, 碗里的苹果.
ZH_RELATIONS: dict[str, str] = {
    "旁边": "next_to", "旁": "next_to", "附近": "next_to", "边上": "next_to", "身边": "next_to",
    "隔壁": "next_to", "周围": "next_to",
    "左边": "left_of", "左侧": "left_of", "左面": "left_of", "左手边": "left_of",
    "右边": "right_of", "右侧": "right_of", "右面": "right_of", "右手边": "right_of",
    "前面": "in_front_of", "前方": "in_front_of", "前边": "in_front_of", "前": "in_front_of",
    "后面": "behind", "后方": "behind", "后边": "behind", "背后": "behind", "后": "behind",
    "上方": "above",
    "下面": "below", "下方": "below", "下边": "below", "底下": "below", "下": "below",
    "上面": "on", "上边": "on", "顶上": "on", "上": "on",
    "里面": "in", "里边": "in", "里头": "in", "里": "in", "中": "in", "内": "in",
}
ZH_RELATION_PREFIXES: tuple[str, ...] = ("在", "位于", "放在")

# --------------------------------------------------------------------------------------------
# Clothing ("the person in the blue jacket", "穿蓝色夹克的人")
# --------------------------------------------------------------------------------------------

# garment word -> (canonical garment, body part the colour applies to)
GARMENTS: dict[str, tuple[str, str]] = {
    "jacket": ("jacket", "upper"), "coat": ("coat", "upper"), "shirt": ("shirt", "upper"),
    "t-shirt": ("t-shirt", "upper"), "tshirt": ("t-shirt", "upper"), "tee": ("t-shirt", "upper"),
    "sweater": ("sweater", "upper"), "jumper": ("sweater", "upper"),
    "hoodie": ("hoodie", "upper"), "top": ("top", "upper"), "dress": ("dress", "upper"),
    "blouse": ("blouse", "upper"), "vest": ("vest", "upper"), "jersey": ("jersey", "upper"),
    "uniform": ("uniform", "upper"), "suit": ("suit", "upper"), "cardigan": ("cardigan", "upper"),
    "trousers": ("trousers", "lower"), "pants": ("pants", "lower"), "jeans": ("jeans", "lower"),
    "skirt": ("skirt", "lower"), "shorts": ("shorts", "lower"), "leggings": ("leggings", "lower"),
    "hat": ("hat", "head"), "cap": ("cap", "head"), "helmet": ("helmet", "head"),
    "beanie": ("beanie", "head"), "hood": ("hood", "head"),
    "夹克": ("jacket", "upper"), "外套": ("coat", "upper"), "大衣": ("coat", "upper"),
    "衬衫": ("shirt", "upper"), "衬衣": ("shirt", "upper"), "t恤": ("t-shirt", "upper"),
    "毛衣": ("sweater", "upper"), "卫衣": ("hoodie", "upper"), "上衣": ("top", "upper"),
    "衣服": ("top", "upper"), "连衣裙": ("dress", "upper"), "背心": ("vest", "upper"),
    "马甲": ("vest", "upper"), "西装": ("suit", "upper"), "制服": ("uniform", "upper"),
    "裤子": ("trousers", "lower"), "长裤": ("trousers", "lower"), "牛仔裤": ("jeans", "lower"),
    "裙子": ("skirt", "lower"), "短裙": ("skirt", "lower"), "短裤": ("shorts", "lower"),
    "帽子": ("hat", "head"), "棒球帽": ("cap", "head"), "头盔": ("helmet", "head"),
    "安全帽": ("helmet", "head"),
}
EN_CLOTHING_INTROS: tuple[str, ...] = (
    "in", "wearing", "with", "who is wearing", "who's wearing", "that is wearing",
    "dressed in", "in a", "with a", "wearing a",
)
ZH_CLOTHING_VERBS: tuple[str, ...] = ("穿着", "穿了", "穿", "戴着", "戴了", "戴", "身穿")

# --------------------------------------------------------------------------------------------
# Nouns
# --------------------------------------------------------------------------------------------

# Determiners and other words that never carry meaning inside a noun phrase.
EN_DETERMINERS: frozenset[str] = frozenset({
    "the", "a", "an", "that", "this", "these", "those", "my", "your", "our", "some", "any",
    "one's", "its", "their", "his", "her", "of", "colored", "coloured", "colour", "color",
    "sized", "size", "kind", "please", "just", "also", "again", "thing's", "which", "is",
    "are", "object", "objects", "thing", "things", "item", "items", "stuff", "sort", "looking",
})
# Heads that mean "the one I described" (noun None): "the left one", "the red thing".
EN_GENERIC_HEADS: frozenset[str] = frozenset({"one", "ones", "thing", "object", "item"})
# Pronoun targets the pipeline resolves against the last target ("pick it up").
EN_PRONOUNS: frozenset[str] = frozenset({"it", "that", "this", "them"})
ZH_PRONOUNS: frozenset[str] = frozenset({"它", "它们", "这个", "那个"})
# Chinese heads of a follow-up answer ("左边那个", "红色的那个", "第二个").
ZH_GENERIC_HEADS: tuple[str, ...] = (
    "的那个", "的这个", "的那只", "的那一个", "那一个", "这一个", "那个", "这个", "那只", "这只",
    "那位", "那辆", "那本", "那张", "的", "个", "只", "任何东西", "任何物体", "东西",
)
ZH_DETERMINERS: tuple[str, ...] = (
    "那个", "这个", "一个", "那只", "这只", "一只", "那", "这", "的", "一些", "些",
)

# English multi-word nouns that must stay one noun (COCO and common household objects).
EN_MULTIWORD_NOUNS: frozenset[str] = frozenset({
    "cell phone", "teddy bear", "traffic light", "dining table", "potted plant", "wine glass",
    "fire hydrant", "stop sign", "parking meter", "baseball bat", "baseball glove",
    "tennis racket", "sports ball", "soccer ball", "tennis ball", "hot dog", "hair drier",
    "hair dryer", "coffee mug",
    "coffee cup", "tea cup", "water bottle", "remote control", "mobile phone", "coffee table",
    "cutting board", "paper towel", "trash can", "garbage can", "tv monitor", "computer mouse",
    "game controller", "plant pot", "flower pot", "soda can", "tin can", "ice cream",
    "tooth brush", "wine bottle", "beer bottle", "office chair", "water glass", "frisbee disc",
    "motor bike", "stuffed animal", "toy bear", "sofa chair",
})

# English synonyms and spellings -> the canonical noun (applied after singularisation).
# Words that name a person keep the original word in ``attributes``.
EN_NOUN_SYNONYMS: dict[str, str] = {
    "cellphone": "cell phone", "mobile phone": "cell phone", "smartphone": "cell phone",
    "phone": "cell phone", "mobile": "cell phone", "iphone": "cell phone",
    "coffee mug": "mug", "coffee cup": "cup", "tea cup": "cup", "teacup": "cup",
    "human": "person", "people": "person", "man": "person", "woman": "person", "guy": "person",
    "lady": "person", "gentleman": "person", "boy": "person", "girl": "person", "kid": "person",
    "child": "person", "pedestrian": "person", "me": "person", "somebody": "person",
    "someone": "person", "worker": "person", "operator": "person", "user": "person",
    "puppy": "dog", "doggy": "dog", "doggie": "dog", "kitten": "cat", "kitty": "cat",
    "bike": "bicycle", "motorbike": "motorcycle", "motor bike": "motorcycle",
    "automobile": "car", "aeroplane": "airplane", "plane": "airplane", "doughnut": "donut",
    "television": "tv", "tv monitor": "tv", "telly": "tv", "sofa": "couch",
    "notebook computer": "laptop", "computer": "laptop", "hair dryer": "hair drier",
    "tooth brush": "toothbrush", "remote control": "remote", "controller": "remote",
    "teddy": "teddy bear", "stuffed animal": "teddy bear", "toy bear": "teddy bear",
    "plant": "potted plant", "plant pot": "potted plant", "flower pot": "potted plant",
    "houseplant": "potted plant", "fridge": "refrigerator", "water glass": "glass",
    "water bottle": "bottle",
    "wine bottle": "bottle", "beer bottle": "bottle", "trash can": "trash can",
    "garbage can": "trash can", "bin": "trash can", "sports ball": "ball",
    "football": "ball", "soccer ball": "ball", "basketball": "ball", "tennis ball": "ball",
    "computer mouse": "mouse", "office chair": "chair",
    "stool": "chair", "desk": "table", "dining table": "dining table", "sofa chair": "chair",
    "frisbee disc": "frisbee", "racket": "tennis racket", "soda can": "can", "tin can": "can",
}

# Nouns the parser recognises as objects in a bare follow-up answer ("the cup") and as anchors.
# Not a restriction on commands: any noun after a recognised verb is kept as said.
EN_KNOWN_NOUNS: frozenset[str] = frozenset({
    # COCO
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
    # household / lab objects
    "mug", "table", "box", "ball", "plate", "pen", "pencil", "marker", "can", "jar", "lid",
    "cube", "block", "toy", "shoe", "bag", "basket", "tray", "pan", "pot", "kettle", "door",
    "window", "shelf", "cabinet", "drawer", "lamp", "trash can", "sponge", "towel", "glass",
    "lemon", "pear", "peach", "tomato", "potato", "onion", "egg", "bread", "cookie",
    "screwdriver", "hammer", "wrench", "tape", "charger", "cable", "headphones", "wallet",
    "key", "glasses", "sock", "hat", "robot", "plant", "monitor", "speaker",
    "notebook", "folder", "paper", "tissue", "stapler", "ruler", "eraser", "cushion",
    "pillow", "blanket", "rug", "mat", "bucket", "cone", "cylinder", "sphere", "bin",
})

# Irregular English plurals and nouns that end in "s" but are singular.
EN_IRREGULAR_PLURALS: dict[str, str] = {
    "people": "person", "persons": "person", "men": "man", "women": "woman",
    "children": "child", "mice": "mouse", "knives": "knife", "shelves": "shelf",
    "leaves": "leaf", "loaves": "loaf", "feet": "foot", "teeth": "tooth", "geese": "goose",
    "sheep": "sheep", "fish": "fish", "wolves": "wolf", "halves": "half", "potatoes": "potato",
    "tomatoes": "tomato", "cacti": "cactus", "dice": "die", "buses": "bus",
    "scarves": "scarf", "calves": "calf", "wives": "wife",
}
EN_INVARIANT_NOUNS: frozenset[str] = frozenset({
    "bus", "glass", "grass", "dress", "scissors", "pants", "shorts", "jeans", "trousers",
    "glasses", "headphones", "skis", "news", "lens", "compass", "cactus", "octopus",
    "asparagus", "chess", "series", "species", "tennis", "leggings", "canvas",
    "gas", "boss", "mattress", "box", "this", "its", "has", "is", "was", "us", "yes",
    "across", "always", "plus", "virus", "campus", "bonus", "status", "iris", "lotus",
    "walrus", "hippopotamus", "abacus", "class", "cross", "mess", "press", "chassis",
})

# Chinese nouns -> canonical English noun (longest match at the end of the phrase wins).
ZH_NOUNS: dict[str, str] = {
    "杯子": "cup", "杯": "cup", "茶杯": "cup", "水杯": "cup", "玻璃杯": "cup", "马克杯": "mug",
    "瓶子": "bottle", "瓶": "bottle", "水瓶": "bottle", "水壶": "bottle", "酒杯": "wine glass",
    "红酒杯": "wine glass", "碗": "bowl", "盘子": "plate", "盘": "plate", "碟子": "plate",
    "椅子": "chair", "凳子": "chair", "沙发": "couch", "床": "bed", "餐桌": "dining table",
    "桌子": "table", "桌": "table", "书桌": "table", "茶几": "table",
    "狗": "dog", "小狗": "dog", "狗狗": "dog", "猫": "cat", "小猫": "cat", "猫咪": "cat",
    "人": "person", "行人": "person", "男人": "person", "女人": "person", "男生": "person",
    "女生": "person", "小孩": "person", "孩子": "person", "人员": "person", "我": "person",
    "鸟": "bird", "马": "horse", "羊": "sheep", "牛": "cow", "大象": "elephant", "熊": "bear",
    "斑马": "zebra", "长颈鹿": "giraffe",
    "香蕉": "banana", "苹果": "apple", "橙子": "orange", "橘子": "orange", "西兰花": "broccoli",
    "胡萝卜": "carrot", "三明治": "sandwich", "热狗": "hot dog", "披萨": "pizza",
    "比萨": "pizza", "甜甜圈": "donut", "蛋糕": "cake", "柠檬": "lemon", "梨": "pear",
    "桃子": "peach", "西红柿": "tomato", "番茄": "tomato", "土豆": "potato", "鸡蛋": "egg",
    "面包": "bread", "饼干": "cookie",
    "自行车": "bicycle", "单车": "bicycle", "汽车": "car", "车": "car", "小车": "car",
    "轿车": "car", "摩托车": "motorcycle", "飞机": "airplane", "公交车": "bus",
    "公共汽车": "bus", "巴士": "bus", "火车": "train", "卡车": "truck", "船": "boat",
    "红绿灯": "traffic light", "交通灯": "traffic light", "消防栓": "fire hydrant",
    "停车标志": "stop sign", "长椅": "bench",
    "盒子": "box", "箱子": "box", "纸箱": "box", "纸盒": "box", "球": "ball", "足球": "ball",
    "篮球": "ball", "网球": "ball", "书": "book", "书本": "book", "本子": "notebook",
    "笔记本": "notebook", "手机": "cell phone", "电话": "cell phone",
    "笔记本电脑": "laptop", "电脑": "laptop", "手提电脑": "laptop",
    "键盘": "keyboard", "鼠标": "mouse", "遥控器": "remote", "电视": "tv", "电视机": "tv",
    "显示器": "tv", "微波炉": "microwave", "烤箱": "oven", "烤面包机": "toaster",
    "水槽": "sink", "冰箱": "refrigerator", "时钟": "clock", "钟": "clock", "花瓶": "vase",
    "剪刀": "scissors", "泰迪熊": "teddy bear", "玩具熊": "teddy bear", "毛绒熊": "teddy bear",
    "吹风机": "hair drier", "牙刷": "toothbrush", "背包": "backpack", "书包": "backpack",
    "雨伞": "umbrella", "伞": "umbrella", "手提包": "handbag", "包": "bag", "领带": "tie",
    "行李箱": "suitcase", "飞盘": "frisbee", "风筝": "kite", "滑板": "skateboard",
    "冲浪板": "surfboard", "网球拍": "tennis racket", "棒球棒": "baseball bat",
    "叉子": "fork", "刀": "knife", "刀子": "knife", "勺子": "spoon", "汤匙": "spoon",
    "盆栽": "potted plant", "植物": "potted plant", "花盆": "potted plant", "马桶": "toilet",
    "笔": "pen", "铅笔": "pencil", "罐子": "jar", "易拉罐": "can", "罐头": "can",
    "方块": "cube", "积木": "block", "玩具": "toy", "鞋": "shoe", "鞋子": "shoe",
    "篮子": "basket", "托盘": "tray", "锅": "pot", "门": "door", "窗户": "window",
    "架子": "shelf", "柜子": "cabinet", "抽屉": "drawer", "灯": "lamp", "台灯": "lamp",
    "垃圾桶": "trash can", "海绵": "sponge", "毛巾": "towel", "螺丝刀": "screwdriver",
    "锤子": "hammer", "扳手": "wrench", "胶带": "tape", "钥匙": "key", "眼镜": "glasses",
    "帽子": "hat", "机器人": "robot", "纸巾": "tissue", "枕头": "pillow", "桶": "bucket",
    "它": "它", "它们": "它",
}

# --------------------------------------------------------------------------------------------
# Confirmation answers (confirm-before-motion mode)
# --------------------------------------------------------------------------------------------

CONFIRM_YES: frozenset[str] = frozenset({
    "yes", "y", "yeah", "yea", "yep", "yup", "sure", "ok", "okay", "confirm", "confirmed",
    "go", "go ahead", "do it", "correct", "affirmative", "proceed", "that's right",
    "that is right", "right", "yes please", "please do", "execute", "continue", "approved",
    "是", "是的", "对", "对的", "好", "好的", "确认", "确定", "可以", "行", "嗯", "没错", "执行",
    "继续", "是啊", "对啊", "好啊", "同意", "开始",
})
CONFIRM_NO: frozenset[str] = frozenset({
    "no", "n", "nope", "nah", "cancel", "stop", "abort", "don't", "do not", "negative",
    "wrong", "no thanks", "no thank you", "not that", "not that one", "never mind", "nevermind",
    "halt", "don't do it", "do not do it",
    "不", "不是", "不要", "取消", "别", "算了", "停", "停止", "否", "不对", "错了", "不行",
    "不用", "不用了", "别动", "不可以",
})

# --------------------------------------------------------------------------------------------
# Attributes the default backend cannot judge
# --------------------------------------------------------------------------------------------

# Words that describe an object in a way the default detector + colour model cannot see: its
# pattern, material, state, or a colour's shade (dark/light: the colour model judges the hue, not
# how dark it is).  word -> kind ("pattern" | "material" | "state" | "shade").  Not used by the
# parser yet: a command using one of these must name it in the answer ("I can't tell striped from
# plain") instead of dropping it and choosing as if it had not been said.  English "glass" and
# "paper" are left out: they are nouns here too ("the glass", "the paper"); the wiring must tell
# "a glass cup" (material) from "the glass" (object).
UNJUDGED_ATTRIBUTES: dict[str, str] = {
    # pattern
    "striped": "pattern", "stripy": "pattern", "dotted": "pattern", "spotted": "pattern",
    "polka-dot": "pattern", "checked": "pattern", "checkered": "pattern", "plaid": "pattern",
    "tartan": "pattern", "floral": "pattern", "flowery": "pattern", "patterned": "pattern",
    "plain": "pattern", "printed": "pattern", "camouflage": "pattern",
    "条纹": "pattern", "条纹的": "pattern", "带条纹的": "pattern", "圆点": "pattern",
    "波点": "pattern", "格子": "pattern", "格子的": "pattern", "花纹": "pattern",
    "碎花": "pattern", "印花": "pattern", "纯色": "pattern",
    # material
    "plastic": "material", "metal": "material", "metallic": "material", "steel": "material",
    "iron": "material", "aluminium": "material", "aluminum": "material",
    "wooden": "material", "wood": "material", "ceramic": "material", "porcelain": "material",
    "cardboard": "material", "leather": "material", "rubber": "material",
    "cotton": "material", "woollen": "material", "wool": "material", "stone": "material",
    "塑料": "material", "塑料的": "material", "玻璃": "material", "玻璃的": "material",
    "金属": "material", "金属的": "material", "不锈钢": "material", "铁": "material",
    "木头": "material", "木制": "material", "木质": "material", "木头的": "material",
    "陶瓷": "material", "瓷": "material", "纸": "material", "纸质": "material",
    "纸板": "material", "皮革": "material", "橡胶": "material", "布": "material",
    # state
    "broken": "state", "cracked": "state", "empty": "state", "full": "state", "clean": "state",
    "dirty": "state", "open": "state", "opened": "state", "closed": "state", "shut": "state",
    "hot": "state", "cold": "state", "warm": "state", "wet": "state", "dry": "state",
    "new": "state", "old": "state", "used": "state", "filled": "state", "half-full": "state",
    "破的": "state", "坏的": "state", "破": "state", "坏": "state", "碎的": "state",
    "空的": "state", "空": "state", "满的": "state", "满": "state", "干净的": "state",
    "干净": "state", "脏的": "state", "脏": "state", "开着的": "state", "打开的": "state",
    "关着的": "state", "关闭的": "state", "热的": "state", "热": "state", "冷的": "state",
    "凉的": "state", "湿的": "state", "干的": "state", "新的": "state", "旧的": "state",
    # shade (the colour model judges the hue only)
    "dark": "shade", "light": "shade", "pale": "shade", "bright": "shade", "deep": "shade",
    "pastel": "shade", "深": "shade", "浅": "shade", "淡": "shade",
}
